"""What every app's admin shares: nothing is deleted, some screens are view-only, and a bulk
action runs one service per selected row and says honestly how many it did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property
from django.utils.translation import gettext as _

from oms.errors import DomainError


class NoDeleteMixin:
    """Orders, payments, events and stock are never removed, not even by a superuser."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyMixin(NoDeleteMixin):
    """A screen to look at: rows here change only through services."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


class ReadOnlyInline(ReadOnlyMixin, admin.TabularInline):
    extra = 0
    can_delete = False


def run_for_each(
    modeladmin: admin.ModelAdmin,
    request,
    rows: Iterable[Any],
    service: Callable[[Any], Any],
    *,
    done_message: str,
    label: Callable[[Any], str] = str,
) -> int:
    """Run `service(row)` for each row, each in its own transaction (the service's), and report
    what really happened: one error line per refused row, then how many were done.
    """
    done = failed = 0
    for row in rows:
        try:
            service(row)
        except (DomainError, PermissionDenied) as err:
            failed += 1
            reason = err.message if isinstance(err, DomainError) else _("没有权限")
            modeladmin.message_user(request, f"{label(row)}: {reason}", level=messages.ERROR)
        else:
            done += 1
    level = messages.SUCCESS if done and not failed else messages.WARNING
    summary = done_message % {"n": done}
    if failed:
        summary += _("；%(n)d 条未处理") % {"n": failed}
    modeladmin.message_user(request, summary, level=level)
    return done


class EstimatedCountPaginator(Paginator):
    """A changelist paginator for tables of millions of rows: it never runs a full COUNT(*).

    Unfiltered, the count is PostgreSQL's own estimate of the table's rows (pg_class.reltuples,
    kept by autovacuum). Filtered or searched, it counts at most COUNT_CAP matching rows: an
    agent narrows a search long before page 100, and a capped count stays an index scan.
    """

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if connection.vendor == "postgresql" and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
                )
                row = cursor.fetchone()
            if row and row[0] > self.COUNT_CAP:
                return int(row[0])
        return queryset.order_by()[: self.COUNT_CAP].count()
