"""Fixtures shared with the fulfillment tests."""

from tests.fulfillment.conftest import guangzhou, hangzhou, stocked  # noqa: F401 (fixtures)
