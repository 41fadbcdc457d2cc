from django import forms
from django.utils.translation import gettext_lazy as _

from .models import SYSTEM_CANCEL_REASONS, CancelReason

# Timeout closes and refused parcels come only from the system; staff pick one of the others.
STAFF_CANCEL_REASONS = [(value, label) for value, label in CancelReason.choices if value not in SYSTEM_CANCEL_REASONS]


class CancelForm(forms.Form):
    reason = forms.ChoiceField(label=_("取消原因"), choices=STAFF_CANCEL_REASONS)
    note = forms.CharField(
        label=_("说明"),
        max_length=200,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
