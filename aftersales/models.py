"""Built by a later issue; the app exists so the layout is complete."""
