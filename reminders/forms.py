from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from orders.models import OrderType

from .models import ManualReminder, ReminderRule
from .rendering import TEMPLATE_VARIABLES, RenderError, check_template


def _variables_help() -> str:
    return _("；").join(f"{{{{ {name} }}}} {meaning}" for name, meaning in TEMPLATE_VARIABLES.items())


# Lazy, so the help text is in the language of the request that shows the form.
VARIABLES_HELP = lazy(_variables_help, str)()


class ReminderRuleForm(forms.ModelForm):
    order_types = forms.MultipleChoiceField(
        label=_("适用订单类型"),
        choices=OrderType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("都不选表示全部类型"),
    )

    class Meta:
        model = ReminderRule
        fields = [
            "name",
            "code",
            "purpose",
            "kind",
            "offset_minutes",
            "channel",
            "order_types",
            "template",
            "email_subject",
            "sms_template_code",
            "active",
        ]
        widgets = {"template": forms.Textarea(attrs={"rows": 5, "cols": 100})}
        help_texts = {"template": format_lazy("{}{}", _("Django 模板语法，可用变量："), VARIABLES_HELP)}

    def _clean_template_field(self, name: str) -> str:
        text = self.cleaned_data.get(name, "")
        try:
            check_template(text)
        except RenderError as err:
            raise forms.ValidationError(_("模板有误：%(e)s") % {"e": err}) from err
        return text

    def clean_template(self) -> str:
        return self._clean_template_field("template")

    def clean_email_subject(self) -> str:
        return self._clean_template_field("email_subject")


class ManualReminderForm(forms.ModelForm):
    class Meta:
        model = ManualReminder
        fields = ["order", "channel", "outcome", "note", "promised_pay_at"]
        widgets = {"note": forms.Textarea(attrs={"rows": 3})}


class ReportRangeForm(forms.Form):
    DEFAULT_DAYS = 14
    MAX_DAYS = 366

    start = forms.DateField(label=_("开始日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("结束日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and start > end:
            raise forms.ValidationError(_("开始日期不能晚于结束日期"))
        if start and end and (end - start).days >= self.MAX_DAYS:
            raise forms.ValidationError(_("日期范围最长一年"))
        return cleaned

    def date_range(self) -> tuple[date, date]:
        """The chosen range, or the last 14 days (today included) when empty or invalid."""
        today = timezone.localdate()
        cleaned = self.cleaned_data if self.is_bound and self.is_valid() else {}
        end = cleaned.get("end") or today
        start = cleaned.get("start") or end - timedelta(days=self.DEFAULT_DAYS - 1)
        return start, end
