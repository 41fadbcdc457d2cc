"""After-sales under real concurrency: threads against PostgreSQL."""

from __future__ import annotations

import pytest

from aftersales.models import Aftersale
from aftersales.services import InProgress, aftersale_create
from tests.threads import run_in_threads

from .conftest import SYSTEM, delivered_order

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_requests_for_the_same_units_at_once_one_wins(hangzhou, stocked):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 2)])

    def ask(_):
        return aftersale_create(
            order=order,
            actor=SYSTEM,
            type="return_refund",
            reason="quality_issue",
            lines=[{"sku": shirt.code, "quantity": 2}],
        )

    results = run_in_threads(4, ask)

    won = [r for r in results if isinstance(r, Aftersale)]
    lost = [r for r in results if isinstance(r, InProgress)]
    assert (len(won), len(lost)) == (1, 3), results
    assert Aftersale.objects.filter(order=order).count() == 1
