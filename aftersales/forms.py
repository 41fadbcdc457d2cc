"""The staff forms of the 售后 screens. They only collect input: the rules (quantities, who may
do what, windows, money) are checked by aftersales.services, which the admin calls."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from orders.models import Order
from reminders import forms as reminders_forms

from .models import Aftersale, AftersaleReason, AftersaleType, Disposition, Responsibility


def _urls(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class ApproveForm(forms.Form):
    refund_shipping = forms.BooleanField(label=_("同时退运费"), required=False)


class InspectionForm(forms.Form):
    """One form for the whole request: per line, received / accepted / disposition / grade / photos."""

    def __init__(self, *args, aftersale: Aftersale, lines, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.aftersale = aftersale
        self.lines = lines
        for ln in lines:
            self.fields[f"received_{ln.pk}"] = forms.IntegerField(
                label=_("收到数量"), min_value=0, max_value=ln.quantity, initial=ln.quantity
            )
            self.fields[f"accepted_{ln.pk}"] = forms.IntegerField(
                label=_("验收通过"), min_value=0, max_value=ln.quantity, initial=ln.quantity
            )
            self.fields[f"disposition_{ln.pk}"] = forms.ChoiceField(
                label=_("处置"), choices=Disposition.choices, initial=Disposition.RESTOCK
            )
            self.fields[f"grade_{ln.pk}"] = forms.CharField(label=_("成色"), max_length=32, required=False)
            self.fields[f"photos_{ln.pk}"] = forms.CharField(
                label=_("照片链接（每行一个）"),
                required=False,
                widget=forms.Textarea(attrs={"rows": 2, "cols": 36}),
            )
        if aftersale.responsibility == Responsibility.SELLER:
            self.fields["return_freight"] = forms.DecimalField(
                label=_("买家垫付的退货运费"),
                min_value=Decimal("0"),
                max_digits=8,
                decimal_places=2,
                required=False,
                help_text=_("商家责任的退货补偿运费，最多 %(cap)s 元") % {"cap": settings.OMS_RETURN_FREIGHT_CAP},
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for ln in self.lines:
            received, accepted = cleaned.get(f"received_{ln.pk}"), cleaned.get(f"accepted_{ln.pk}")
            if received is not None and accepted is not None and accepted > received:
                self.add_error(f"accepted_{ln.pk}", _("验收通过数量不能超过收到数量"))
        return cleaned

    def rows(self) -> list[dict[str, Any]]:
        """For the template: each line with its bound fields."""
        return [
            {
                "line": ln,
                **{
                    name: self[f"{name}_{ln.pk}"] for name in ("received", "accepted", "disposition", "grade", "photos")
                },
            }
            for ln in self.lines
        ]

    def accepted(self) -> dict[int, int]:
        return {ln.pk: self.cleaned_data[f"accepted_{ln.pk}"] for ln in self.lines}

    def inspections(self) -> list[dict[str, Any]]:
        return [
            {
                "sku": ln.order_line.sku_code,
                "quantity_received": self.cleaned_data[f"received_{ln.pk}"],
                "quantity_accepted": self.cleaned_data[f"accepted_{ln.pk}"],
                "disposition": self.cleaned_data[f"disposition_{ln.pk}"],
                "grade": self.cleaned_data[f"grade_{ln.pk}"],
                "photos": _urls(self.cleaned_data[f"photos_{ln.pk}"]),
            }
            for ln in self.lines
        ]

    def return_freight(self) -> Decimal | None:
        return self.cleaned_data.get("return_freight")


class OrderLookupForm(forms.Form):
    order_no = forms.CharField(label=_("订单号"), max_length=32)


class OpenForm(forms.Form):
    """客服 opens a request for a customer, including 补差 (compensation, staff only)."""

    type = forms.ChoiceField(label=_("类型"), choices=AftersaleType.choices)
    reason = forms.ChoiceField(label=_("原因"), choices=AftersaleReason.choices)
    description = forms.CharField(
        label=_("问题描述"), max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    images = forms.CharField(label=_("图片链接（每行一个）"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    compensation_amount = forms.DecimalField(
        label=_("补差金额"), min_value=Decimal("0.01"), max_digits=12, decimal_places=2, required=False
    )

    def __init__(self, *args, order: Order, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.order_lines = list(order.lines.all())
        for line in self.order_lines:
            self.fields[f"qty_{line.pk}"] = forms.IntegerField(
                label=line.sku_code, min_value=0, max_value=line.quantity, initial=0, required=False
            )

    def line_rows(self) -> list[dict[str, Any]]:
        return [{"line": line, "field": self[f"qty_{line.pk}"]} for line in self.order_lines]

    def lines(self) -> list[dict[str, Any]]:
        return [
            {"sku": line.sku_code, "quantity": self.cleaned_data[f"qty_{line.pk}"]}
            for line in self.order_lines
            if self.cleaned_data.get(f"qty_{line.pk}")
        ]

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "type": data["type"],
            "reason": data["reason"],
            "lines": self.lines(),
            "description": data["description"],
            "images": _urls(data["images"]),
            "compensation_amount": data["compensation_amount"] if data["type"] == AftersaleType.COMPENSATION else None,
        }


class ReportRangeForm(reminders_forms.ReportRangeForm):
    """The 催付 report's date range, over the last 30 days by default."""

    DEFAULT_DAYS = 30
