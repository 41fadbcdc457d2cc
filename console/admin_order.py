"""The admin index lists the apps in the order staff work in them, not alphabetically: orders
first, then parcels, after-sales, money, messages, stock; the technical ones last."""

from __future__ import annotations

APP_ORDER = ["orders", "fulfillment", "aftersales", "payments", "reminders", "inventory", "auth", "accounts"]


def admin_apps_in_working_order(site) -> None:
    default = site.get_app_list

    def get_app_list(request, app_label=None):
        apps = default(request, app_label)
        rank = {label: index for index, label in enumerate(APP_ORDER)}
        return sorted(apps, key=lambda app: rank.get(app["app_label"], len(rank)))

    site.get_app_list = get_app_list
