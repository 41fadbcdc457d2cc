from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils.translation import gettext as _

from console.views import can_see_dashboard
from console.workbench import workbench_for

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard_allowed(context) -> bool:
    request = context.get("request")
    return request is not None and can_see_dashboard(request.user)


@register.simple_tag(takes_context=True)
def workbench_queues(context):
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return []
    return workbench_for(request.user)


def _span(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return _("%(d)d 天 %(h)d 小时") % {"d": days, "h": hours}
    if hours:
        return _("%(h)d 小时 %(m)d 分") % {"h": hours, "m": minutes}
    return _("%(m)d 分钟") % {"m": minutes}


@register.filter
def countdown(queue) -> str:
    """剩 5 小时 12 分 / 已超时 2 小时 3 分, for the soonest deadline of a queue."""
    if queue.deadline is None:
        return ""
    left = queue.deadline - queue.now
    if left.total_seconds() < 0:
        return _("已超时 %(span)s") % {"span": _span(left)}
    return _("剩 %(span)s") % {"span": _span(left)}


@register.filter
def oldest_age(queue) -> str:
    if queue.oldest_at is None:
        return ""
    return _span(queue.now - queue.oldest_at)
