"""Workflows span apps: the fulfillment fixtures (warehouses, stocked SKUs, staff) serve here too."""

from tests.fulfillment.conftest import hangzhou, staff, stocked  # noqa: F401
