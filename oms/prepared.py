"""Querysets compiled once and run many times: for the reads on every order placed or notify applied.

Django compiles a queryset to SQL each time it runs it; for a short query that compilation
costs more CPU than the database spends answering it. A `PreparedQuery` is written as an
ordinary queryset (a function of keyword arguments), compiled the first time it is asked for
with a given shape, and afterwards only rebinds the values::

    _order_id = PreparedQuery(
        lambda storefront_id, external_id: Order.objects.filter(
            storefront_id=storefront_id, external_id=external_id
        ).values_list("pk", flat=True)[:1]
    )
    _order_id.rows(storefront_id=5, external_id="A-1")  # [(42,)] or []

How the values are found in the compiled statement: the function is called once with
stand-ins (an improbable int for an int, an improbable string for a str, a list of them for
a list), and each stand-in's position among the statement's parameters is remembered. So the
arguments must be ints, strs or lists of them (pass primary keys, not instances), and each
must reach the statement as given (as a filter value, not inside an expression that changes
it). A shape is the arguments' names and the lengths of the lists; each shape is compiled
once per process. Constants in the queryset stay as they were compiled.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable
from django.db.transaction import TransactionManagementError

_INT_BASE = -7_340_000_000_000_000
_STR_MARK = "\x1eoms-prepared-"


class PreparedQuery:
    def __init__(self, build: Callable[..., QuerySet]) -> None:
        self.build = build
        self._compiled: dict[tuple, _Compiled] = {}

    def rows(self, **values: Any) -> list[tuple]:
        """The result rows as tuples, in the order the queryset selects its columns."""
        return self._execute(connections[DEFAULT_DB_ALIAS], values)[1]

    def objects(self, **values: Any) -> list[Model]:
        """The result rows as model instances, with the objects select_related named (one level
        of forward relations) read from the same rows and set on them, and each annotation's
        value set as an attribute, as the queryset would."""
        db = connections[DEFAULT_DB_ALIAS]
        compiled, rows = self._execute(db, values)
        assert compiled.model is not None, "objects() needs a queryset of model instances"
        from_db, names, width = compiled.model.from_db, compiled.attnames, len(compiled.attnames)
        annotations = compiled.annotations
        found = []
        for row in rows:
            obj = from_db(db.alias, names, row[:width])
            for name, position in annotations:
                setattr(obj, name, row[position])
            for related in compiled.related:
                related.attach(obj, row, db.alias)
            found.append(obj)
        return found

    def _execute(self, db: BaseDatabaseWrapper, values: dict[str, Any]) -> tuple[_Compiled, list[tuple]]:
        shape = (
            db.vendor,
            tuple(sorted((name, len(v) if isinstance(v, list | tuple) else -1) for name, v in values.items())),
        )
        compiled = self._compiled.get(shape)
        if compiled is None:
            compiled = self._compiled[shape] = _Compiled.of(db, self.build, values)
        if compiled.for_update and db.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        with db.cursor() as cursor:
            cursor.execute(compiled.sql, compiled.bind(values))
            rows = cursor.fetchall()
        return compiled, compiled.convert(db, rows) if compiled.converters else rows


class _Compiled:
    def __init__(
        self,
        sql: str,
        slots: list[tuple],
        model: type[Model] | None,
        attnames: list[str],
        *,
        for_update: bool,
        converters: list,
    ) -> None:
        self.sql = sql
        self.converters = converters
        self.for_update = for_update
        self.slots = slots  # per parameter: ("value", name, index or None) or ("constant", value)
        self.model = model
        self.attnames = attnames
        self.related: list[_Related] = []
        self.annotations: list[tuple[str, int]] = []  # (name, its column in the row)

    @classmethod
    def of(cls, db: BaseDatabaseWrapper, build: Callable[..., QuerySet], values: dict[str, Any]) -> _Compiled:
        counter = itertools.count(1)
        where: dict[Any, tuple[str, int | None]] = {}

        def stand_in(value: Any, name: str, index: int | None) -> Any:
            number = next(counter)
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise TypeError(f"PreparedQuery argument {name} must be an int, a str or a list of them")
            fake = _INT_BASE - number if isinstance(value, int) else f"{_STR_MARK}{number}"
            where[fake] = (name, index)
            return fake

        fakes = {
            name: [stand_in(item, name, i) for i, item in enumerate(value)]
            if isinstance(value, list | tuple)
            else stand_in(value, name, None)
            for name, value in values.items()
        }
        queryset = build(**fakes)
        compiler = queryset.query.get_compiler(connection=db)
        sql, params = compiler.as_sql()
        slots, used = [], set()
        for param in params:
            # An argument may reach the statement more than once (filter(Q(a=x) | Q(b=x))).
            found = where.get(param) if isinstance(param, int | str) and not isinstance(param, bool) else None
            if found is None:
                slots.append(("constant", param))
            else:
                slots.append(("value", *found))
                used.add(param)
        if len(used) < len(where):
            missing = sorted({name for fake, (name, _) in where.items() if fake not in used})
            raise ValueError(f"PreparedQuery arguments not passed to the statement as they are: {missing}")
        model, attnames, related, annotations = None, [], [], []
        if queryset._iterable_class is ModelIterable:
            model = queryset.model
            klass = compiler.klass_info
            assert klass["select_fields"] == list(range(len(klass["select_fields"])))
            attnames = [compiler.select[i][0].target.attname for i in klass["select_fields"]]
            related = [_Related.of(compiler, info) for info in klass.get("related_klass_infos", [])]
            annotations = list(compiler.annotation_col_map.items())
        # What Django does to each value read (a Decimal from SQLite's text, JSON from PostgreSQL's).
        selected = [column[0] for column in compiler.select[: compiler.col_count]]
        converters = sorted(compiler.get_converters(selected).items())
        compiled = cls(sql, slots, model, attnames, for_update=queryset.query.select_for_update, converters=converters)
        compiled.related, compiled.annotations = related, annotations
        return compiled

    def convert(self, db: BaseDatabaseWrapper, rows: list[tuple]) -> list[tuple]:
        converted = []
        for row in rows:
            row = list(row)
            for position, (functions, expression) in self.converters:
                value = row[position]
                for function in functions:
                    value = function(value, expression, db)
                row[position] = value
            converted.append(tuple(row))
        return converted

    def bind(self, values: dict[str, Any]) -> list[Any]:
        params = []
        for slot in self.slots:
            if slot[0] == "constant":
                params.append(slot[1])
            else:
                value = values[slot[1]]
                params.append(value if slot[2] is None else value[slot[2]])
        return params


class _Related:
    """One object select_related reads from the same row (as Django's RelatedPopulator)."""

    def __init__(self, model: type[Model], attnames: list[str], start: int, local_setter, remote_setter) -> None:
        self.model = model
        self.attnames = attnames
        self.start, self.end = start, start + len(attnames)
        self.pk_index = start + attnames.index(model._meta.pk.attname)
        self.local_setter, self.remote_setter = local_setter, remote_setter

    @classmethod
    def of(cls, compiler, info: dict) -> _Related:
        assert not info["reverse"] and not info.get("from_parent"), "forward relations only"
        assert not info.get("related_klass_infos"), "one level of select_related"
        fields = info["select_fields"]
        assert fields == list(range(fields[0], fields[0] + len(fields)))
        attnames = [compiler.select[i][0].target.attname for i in fields]
        return cls(info["model"], attnames, fields[0], info["local_setter"], info["remote_setter"])

    def attach(self, obj: Model, row: tuple, alias: str) -> None:
        related = None
        if row[self.pk_index] is not None:
            related = self.model.from_db(alias, self.attnames, row[self.start : self.end])
        self.local_setter(obj, related)
        if related is not None:
            self.remote_setter(related, obj)
