"""Verbs that change more than one app at once, one module per family.

Each workflow opens the transaction and calls each app's own service in turn, so every
table keeps its one writer and no app reaches sideways or up into another app's services
(see docs/architecture.md). Views, the API, the admin, tasks and commands call these,
or an app's services directly when only that app changes.

- cancellation: cancel an order; when it was paid, its full refund in the same transaction.
- expiry: the timeout sweep (gateway check first, then close, then the closed-order notice).
"""
