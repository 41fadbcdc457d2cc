"""Set-based writes for the sweeps: many rows in one statement, without a model instance per row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections, transaction
from django.db.models import Field, ForeignKey, Model, Value
from django.db.models.expressions import DatabaseDefault, RawSQL
from django_fsm import ConcurrentTransition, ConcurrentTransitionMixin, FSMFieldMixin


def _db():
    """The default database's connection of this thread, looked up once per call: each attribute
    read through the `django.db.connection` proxy costs a thread-local lookup, and preparing a
    row's values reads it once per field."""
    return connections[DEFAULT_DB_ALIAS]


def _send(connection, statement: str, params: list, *, defer: bool) -> int | None:
    """Run a statement whose answer is not read: held back to travel with the transaction's
    next statement when asked to and the connection can (oms.postgresql.statements; then
    None), else now (its row count)."""
    raw = connection.connection
    if defer and raw is not None and hasattr(raw, "defer") and not connection.get_autocommit():
        raw.defer(statement, params)
        return None
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def returning_supported() -> bool:
    """Whether UPDATE … RETURNING can be used: PostgreSQL, and SQLite from 3.35 (an older SQLite
    linked into some Python builds has none; callers then read first and write second)."""
    return bool(_db().features.can_return_columns_from_insert)


def insert_per_id(template: Model, *, per: str, ids: Sequence[int], ignore_conflicts: bool = False) -> int:
    """INSERT one copy of unsaved `template` for each id in `ids`, with its `per` foreign key set to that id.

    The rows are made by `INSERT ... SELECT ... FROM <the referenced table> WHERE id IN (...)`,
    so a batch of thousands costs one statement and no model instance per row (bulk_create
    builds and adapts every value of every row in Python). Every other column takes the
    template's value, defaults and auto_now(_add) included, so a field added later is filled
    like any save would fill it. Ids that name no row are skipped. Returns the rows written
    (with ignore_conflicts, the rows that did not already exist, where the database says so).
    """
    connection = _db()
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


def upsert_rows(model: type[Model], rows: Sequence[Mapping[str, Any]], *, unique: str, update: Sequence[str]) -> int:
    """INSERT `rows` (dicts of field name -> value, all with the same names) in one statement;
    a row whose `unique` field is already taken updates the `update` fields of that row instead.

    What bulk_create(update_conflicts=True) writes, without a model instance per row: each
    value is prepared as save() would prepare it. Returns the rows written.
    """
    connection = _db()
    if not rows:
        return 0
    meta = model._meta
    fields = [meta.get_field(name) for name in rows[0]]
    quote = connection.ops.quote_name
    row = f"({', '.join(['%s'] * len(fields))})"
    updates = ", ".join(
        f"{quote(meta.get_field(name).column)} = EXCLUDED.{quote(meta.get_field(name).column)}" for name in update
    )
    statement = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)})"
        f" VALUES {', '.join([row] * len(rows))}"
        f" ON CONFLICT ({quote(meta.get_field(unique).column)}) DO UPDATE SET {updates}"
    )
    params = [field.get_db_prep_save(values[field.name], connection) for values in rows for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def update_per_pk(model: type[Model], values: Mapping[Any, Mapping[str, Any]], *, defer: bool = False) -> int | None:
    """One UPDATE giving each row, by primary key, its own values (`{pk: {field name: value}}`,
    the same names for every row): ``SET column = CASE pk WHEN .. THEN .. END``.

    The caller decides the values, so it holds the rows' locks when they depend on what the
    rows held. Returns the rows updated; with `defer` (in a transaction, for a caller that does
    not read the count) the statement may travel with the next one instead, and None is returned.
    """
    connection = _db()
    if not values:
        return 0
    meta = model._meta
    quote = connection.ops.quote_name
    pk = quote(meta.pk.column)
    names = list(next(iter(values.values())))
    sets, params = [], []
    for name in names:
        field = meta.get_field(name)
        sets.append(f"{quote(field.column)} = CASE {pk}{' WHEN %s THEN %s' * len(values)} END")
        for key, row in values.items():
            params += [key, field.get_db_prep_save(row[name], connection)]
    statement = f"UPDATE {quote(meta.db_table)} SET {', '.join(sets)} WHERE {pk} IN ({', '.join(['%s'] * len(values))})"
    return _send(connection, statement, [*params, *values], defer=defer)


_INSERT_STATEMENTS: dict[tuple, tuple[str, list]] = {}


def insert_new(objects: Sequence[Model], *, defer: bool = False) -> None:
    """INSERT unsaved model instances of one class in one statement and give each its new primary key.

    What ``save()`` or ``bulk_create()`` writes for a new row: every concrete field, each value
    prepared as save would prepare it, auto_now(_add) included, and a field left to its
    db_default given that constant (in the row and on the instance). It is for the paths that
    run on every order placed: the statement's text is kept once built (per model and row
    count), so a call costs the values' preparation and the round trip, not a compilation. No
    signals are sent (this project connects none). Where the database cannot return the new
    keys of a multi-row INSERT (SQLite before 3.35), or a db_default is an expression, each
    object is saved in turn.

    Objects whose primary keys are already set (drawn from the table's sequence, see
    `new_ids`) are written with them, and nothing is read back; with `defer` (in a
    transaction) that INSERT may travel with the transaction's next statement (`_send`).
    """
    if not objects:
        return
    if objects[0].pk is not None:
        _insert_with_keys(objects, defer=defer)
        return
    if not _db().features.can_return_rows_from_bulk_insert:
        for obj in objects:
            obj.save(force_insert=True)
        return
    try:
        _insert_returning(objects, len(objects), on_conflict="")
    except _ComputedByDatabase as computed:  # let save() ask the database for it
        computed.obj.save(force_insert=True)
        insert_new([o for o in objects if o._state.adding])


def insert_new_unless_conflict(obj: Model) -> bool:
    """INSERT one unsaved instance as insert_new does, unless it would break a unique constraint.

    True when the row was inserted (``obj`` then has its key); False when a row already holds
    one of its unique values: ``INSERT ... ON CONFLICT DO NOTHING``, so nothing is raised and a
    surrounding transaction stays usable. A conflicting row that another transaction has not
    committed yet is waited for, as a unique index makes any insert wait.
    """
    if not _db().features.can_return_rows_from_bulk_insert:
        try:
            with transaction.atomic():
                obj.save(force_insert=True)
        except IntegrityError:
            return False
        return True
    try:
        return _insert_returning([obj], 0, on_conflict=" ON CONFLICT DO NOTHING") == 1
    except _ComputedByDatabase:
        raise NotImplementedError("insert_new_unless_conflict: a db_default computed by the database") from None


class _ComputedByDatabase(Exception):
    """A field's db_default is an expression: only the database knows its value."""

    def __init__(self, obj: Model) -> None:
        super().__init__(type(obj).__name__)
        self.obj = obj


def _insert_statement(objects: Sequence[Model], *, suffix: str, with_keys: bool) -> tuple[str, list]:
    """The kept ``INSERT ... VALUES ...<suffix>`` of `objects` (their primary keys too when
    `with_keys`), and its values, each prepared as save() prepares it."""
    connection = _db()
    model = type(objects[0])
    key = (model, connection.vendor, len(objects), suffix, with_keys)
    cached = _INSERT_STATEMENTS.get(key)
    if cached is None:
        meta = model._meta
        quote = connection.ops.quote_name
        fields = [field for field in meta.concrete_fields if with_keys or not field.primary_key]
        row = f"({', '.join(['%s'] * len(fields))})"
        cached = _INSERT_STATEMENTS[key] = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)})"
            f" VALUES {', '.join([row] * len(objects))}{suffix}",
            fields,
        )
    statement, fields = cached
    params = []
    for obj in objects:  # runs for every field of every row placed: kept inline
        for field in fields:
            value = field.pre_save(obj, add=True)
            if isinstance(value, DatabaseDefault):
                value = field.db_default.value if isinstance(field.db_default, Value) else field.db_default
                if hasattr(value, "resolve_expression"):
                    raise _ComputedByDatabase(obj)
                setattr(obj, field.attname, value)
            params.append(field.get_db_prep_save(value, connection))
    return statement, params


def _insert_returning(objects: Sequence[Model], expected: int, *, on_conflict: str) -> int:
    """The kept ``INSERT ... [on_conflict] RETURNING pk`` of `objects`; sets the keys of the rows
    written on their objects and returns how many were written. `expected` is the number of
    objects when every row must be written, 0 for one object that may not be."""
    connection = _db()
    pk = connection.ops.quote_name(type(objects[0])._meta.pk.column)
    statement, params = _insert_statement(objects, suffix=f"{on_conflict} RETURNING {pk}", with_keys=False)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        keys = [row[0] for row in cursor.fetchall()]
    # Every row written, or (ON CONFLICT, one row at a time) the one row or none.
    for obj, pk in zip(objects, keys, strict=bool(expected)):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    return len(keys)


def _insert_with_keys(objects: Sequence[Model], *, defer: bool) -> None:
    if any(obj.pk is None for obj in objects):
        raise ValueError(f"insert_new: some {type(objects[0]).__name__} objects have keys, some not")
    try:
        statement, params = _insert_statement(objects, suffix="", with_keys=True)
    except _ComputedByDatabase:
        raise NotImplementedError("insert_new with keys: a db_default computed by the database") from None
    connection = _db()
    _send(connection, statement, params, defer=defer)
    for obj in objects:
        obj._state.adding = False
        obj._state.db = connection.alias


def new_ids(model: type[Model], count: int = 1) -> RawSQL:
    """An expression drawing `count` new primary keys from `model`'s own sequence (PostgreSQL),
    as a list: to give new rows their keys before they are written, e.g. as an annotation of a
    read that runs anyway (a PreparedQuery's argument may be passed as `count`). Values drawn
    and not used are a gap in the sequence, as a rolled-back INSERT leaves one."""
    meta = model._meta
    return RawSQL(
        "ARRAY(SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s))",
        (meta.db_table, meta.pk.column, count),
        output_field=Field(),
    )


_UPDATE_STATEMENTS: dict[tuple, tuple[str, list, list]] = {}


def save_fields(obj: Model, update_fields: Sequence[str]) -> None:
    """``obj.save(update_fields=...)`` for a row read from the database, with the statement kept.

    The same UPDATE save() sends (each field's pre_save, so auto_now moves, and the value
    prepared as save prepares it), built once per model and field list. For a django-fsm
    ConcurrentTransitionMixin model the row is matched on its state fields as they were read,
    as that mixin's save does, so a transition another transaction committed meanwhile raises
    ConcurrentTransition instead of being overwritten. Like save(update_fields=...), a row that
    is gone raises DatabaseError. No signals are sent (this project connects none). An empty
    list saves nothing, as save(update_fields=[]) does.
    """
    if not update_fields:
        return
    connection = _db()
    model = type(obj)
    key = (model, connection.vendor, tuple(update_fields))
    cached = _UPDATE_STATEMENTS.get(key)
    if cached is None:
        meta = model._meta
        quote = connection.ops.quote_name
        fields = [meta.get_field(name) for name in update_fields]
        guarded = [
            f
            for f in meta.concrete_fields
            if isinstance(obj, ConcurrentTransitionMixin) and isinstance(f, FSMFieldMixin)
        ]
        where = " AND ".join(f"{quote(f.column)} = %s" for f in [meta.pk, *guarded])
        cached = _UPDATE_STATEMENTS[key] = (
            f"UPDATE {quote(meta.db_table)} SET {', '.join(f'{quote(f.column)} = %s' for f in fields)} WHERE {where}",
            fields,
            guarded,
        )
    statement, fields, guarded = cached
    params = [field.get_db_prep_save(field.pre_save(obj, add=False), connection) for field in fields]
    params.append(obj.pk)
    if guarded:
        # django-fsm's own record of the states the row held when obj was read or last saved (a
        # private name: tests/oms/test_prepared.py fails if an upgrade of django-fsm-2 moves it).
        read = obj._ConcurrentTransitionMixin__initial_states
        params += [field.get_db_prep_save(read[field.attname], connection) for field in guarded]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        updated = cursor.rowcount
    if not updated:
        if guarded and model._base_manager.filter(pk=obj.pk).exists():
            raise ConcurrentTransition(
                "Cannot save object! The state has been changed since fetched from the database!"
            )
        raise DatabaseError("Save with update_fields did not affect any rows.")
    if guarded:
        obj._update_initial_state()
