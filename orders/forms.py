from django import forms
from django.utils.translation import gettext_lazy as _

from .models import CancelReason


class CancelForm(forms.Form):
    reason = forms.ChoiceField(label=_("取消原因"), choices=CancelReason.choices)
    note = forms.CharField(
        label=_("说明"),
        max_length=200,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class ShipForm(forms.Form):
    carrier = forms.CharField(label=_("承运商"), max_length=64)
    tracking_no = forms.CharField(label=_("运单号"), max_length=64)
