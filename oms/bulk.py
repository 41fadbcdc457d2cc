"""Set-based inserts for the sweeps: one row per id, built by the database, not in Python."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import ForeignKey, Model


def insert_per_id(template: Model, *, per: str, ids: Sequence[int], ignore_conflicts: bool = False) -> int:
    """INSERT one copy of unsaved `template` for each id in `ids`, with its `per` foreign key set to that id.

    The rows are made by `INSERT ... SELECT ... FROM <the referenced table> WHERE id IN (...)`,
    so a batch of thousands costs one statement and no model instance per row (bulk_create
    builds and adapts every value of every row in Python). Every other column takes the
    template's value, defaults and auto_now(_add) included, so a field added later is filled
    like any save would fill it. Ids that name no row are skipped. Returns the rows written
    (with ignore_conflicts, the rows that did not already exist, where the database says so).
    """
    if not ids:
        return 0
    model = type(template)
    meta = model._meta
    key = meta.get_field(per)
    assert isinstance(key, ForeignKey), f"{model.__name__}.{per} is not a foreign key"
    target = key.related_model._meta
    quote = connection.ops.quote_name
    columns, values, params = [], [], []
    for field in meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(quote(field.column))
        if field is key:
            values.append(f"{quote(target.db_table)}.{quote(target.pk.column)}")
            continue
        params.append(field.get_db_prep_save(field.pre_save(template, add=True), connection))
        # PostgreSQL types a bare parameter in a SELECT list as text; say what the column is.
        values.append(f"CAST(%s AS {field.cast_db_type(connection)})" if connection.vendor == "postgresql" else "%s")
    statement = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)})"
        f" SELECT {', '.join(values)} FROM {quote(target.db_table)}"
        f" WHERE {quote(target.db_table)}.{quote(target.pk.column)} IN ({', '.join(['%s'] * len(ids))})"
        f" ORDER BY {quote(target.db_table)}.{quote(target.pk.column)}"
    )
    if ignore_conflicts:
        statement += " ON CONFLICT DO NOTHING"
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, *ids])
        return cursor.rowcount
