"""Default Celery beat schedules as rows operations staff can edit (django-celery-beat), written by
data migrations. Re-running is harmless: rows are matched by name, and edited rows are kept.

Each schedule is (name, dotted task name, every N seconds, description).
"""

from __future__ import annotations

Schedule = tuple[str, str, int, str]


def schedules_install(apps, schedules: list[Schedule]) -> None:
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds, description in schedules:
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": interval, "description": description, "enabled": True}
        )


def schedules_remove(apps, schedules: list[Schedule]) -> None:
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in schedules]).delete()
