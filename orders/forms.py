from django import forms
from django.utils.translation import gettext_lazy as _

from .models import CancelReason

# Timeout closes come only from the sweep; staff pick one of the other reasons.
STAFF_CANCEL_REASONS = [(value, label) for value, label in CancelReason.choices if value != CancelReason.TIMEOUT]


class CancelForm(forms.Form):
    reason = forms.ChoiceField(label=_("取消原因"), choices=STAFF_CANCEL_REASONS)
    note = forms.CharField(
        label=_("说明"),
        max_length=200,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class ShipForm(forms.Form):
    carrier = forms.CharField(label=_("承运商"), max_length=64)
    tracking_no = forms.CharField(label=_("运单号"), max_length=64)
