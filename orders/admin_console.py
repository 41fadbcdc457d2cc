"""The customer-service console on the order admin (issue 11): memos, hold / release, address
and phone correction, the review of flagged and manual orders, manual order entry, and the
待人工审核 / 挂起 filters. orders.admin.OrderAdmin includes OrderConsoleMixin; every button
here is one service call with the acting user, and a refusal comes back as a Chinese message.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q
from django.forms import formset_factory
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from inventory.models import Sku
from oms.errors import DomainError
from workflows.address import order_change_address

from .events import Actor
from .holds import HOLDABLE, order_hold, order_release
from .manual import manual_external_id, order_manual_approve, order_manual_create
from .memos import MEMO_MAX_LENGTH, order_memo_add
from .models import Order, OrderMemo, OrderStatus, PaymentMethod, ReviewFlag
from .services import order_approve

# --- list filters ------------------------------------------------------------------------


class ReviewQueueFilter(admin.SimpleListFilter):
    """待人工审核: paid orders held by a review flag, and manual orders awaiting their second
    reviewer (even before payment, so a bank transfer is not waited for)."""

    title = _("待人工审核")
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("waiting", _("待人工审核")), ("manual", _("手动录入待复核"))]

    def queryset(self, request, queryset):
        if self.value() not in ("waiting", "manual"):
            return queryset
        # The same predicate as the partial index order_review_queue_idx, so only flagged orders
        # are read. A manual order can be in no other state: its flag blocks every approval.
        flagged = queryset.filter(status__in=[OrderStatus.PENDING_PAYMENT, OrderStatus.PAID]).exclude(review_flags=[])
        # icontains on the JSON text works on PostgreSQL and SQLite alike (JSON `contains` does not).
        manual = Q(review_flags__icontains=f'"{ReviewFlag.MANUAL.value}"')
        if self.value() == "manual":
            return flagged.filter(manual)
        return flagged.filter(Q(status=OrderStatus.PAID) | manual)


class HeldFilter(admin.SimpleListFilter):
    """挂起: orders held back from the warehouse (a partial index keeps this cheap)."""

    title = _("挂起")
    parameter_name = "held"

    def lookups(self, request, model_admin):
        return [("yes", _("已挂起")), ("no", _("未挂起"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(held_at__isnull=False, status__in=HOLDABLE)
        if self.value() == "no":
            return queryset.filter(held_at__isnull=True)
        return queryset


# --- forms -------------------------------------------------------------------------------


class MemoForm(forms.Form):
    text = forms.CharField(
        label=_("备注"), max_length=MEMO_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )


class HoldForm(forms.Form):
    reason = forms.CharField(label=_("挂起原因"), max_length=200)


class ReviewForm(forms.Form):
    note = forms.CharField(label=_("复核说明"), max_length=500, required=False)


class AddressCorrectionForm(forms.Form):
    """Only the fields filled in change; the rest keep their values (so nobody retypes a
    masked phone number or street to fix the district)."""

    receiver = forms.CharField(label=_("收货人"), max_length=64, required=False)
    phone = forms.RegexField(label=_("收货电话"), regex=r"^[0-9+\-]{5,20}$", required=False)
    province = forms.CharField(label=_("省"), max_length=32, required=False)
    city = forms.CharField(label=_("市"), max_length=32, required=False)
    district = forms.CharField(label=_("区/县"), max_length=32, required=False)
    detail = forms.CharField(label=_("详细地址"), max_length=200, required=False)
    postcode = forms.RegexField(label=_("邮编"), regex=r"^[0-9]{6}$", required=False)

    def changes(self) -> dict[str, str]:
        return {name: value.strip() for name, value in self.cleaned_data.items() if value and value.strip()}


class ManualOrderForm(forms.Form):
    external_id = forms.CharField(widget=forms.HiddenInput)
    payment_method = forms.ChoiceField(
        label=_("支付方式"),
        choices=[(m, PaymentMethod(m).label) for m in (PaymentMethod.BANK_TRANSFER, PaymentMethod.COD)],
    )
    customer_name = forms.CharField(label=_("顾客姓名"), max_length=64)
    customer_mobile = forms.RegexField(label=_("顾客手机"), regex=r"^1[0-9]{10}$")
    receiver = forms.CharField(label=_("收货人"), max_length=64)
    receiver_phone = forms.RegexField(label=_("收货电话"), regex=r"^[0-9+\-]{5,20}$")
    province = forms.CharField(label=_("省"), max_length=32)
    city = forms.CharField(label=_("市"), max_length=32)
    district = forms.CharField(label=_("区/县"), max_length=32)
    detail = forms.CharField(label=_("详细地址"), max_length=200)
    postcode = forms.RegexField(label=_("邮编"), regex=r"^[0-9]{6}$", required=False)
    remark = forms.CharField(label=_("顾客备注"), max_length=200, required=False)


class SkuChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, sku: Sku) -> str:
        return f"{sku.code}  {sku.name} {sku.spec}  ¥{sku.price}"


class ManualLineForm(forms.Form):
    sku = SkuChoiceField(label=_("商品"), queryset=Sku.objects.filter(active=True).order_by("code"))
    quantity = forms.IntegerField(label=_("数量"), min_value=1, max_value=9999)


class BaseManualLineFormSet(forms.BaseFormSet):
    def clean(self):
        if not any(form.cleaned_data.get("sku") for form in self.forms if not form.errors):
            raise forms.ValidationError(_("请至少选择一件商品"))


ManualLineFormSet = formset_factory(ManualLineForm, formset=BaseManualLineFormSet, extra=3)


# --- the mixin ---------------------------------------------------------------------------


class OrderConsoleMixin:
    """Included by orders.admin.OrderAdmin (first among its bases)."""

    change_list_template = "admin/orders/order/console_change_list.html"

    def get_list_filter(self, request):
        return [ReviewQueueFilter, HeldFilter, *super().get_list_filter(request)]

    def get_list_display(self, request):
        return [*super().get_list_display(request), "hold_badge"]

    @admin.display(description=_("挂起"))
    def hold_badge(self, order: Order):
        if order.held_at is None:
            return "—"
        return format_html('<b style="color:#c62828" title="{}">{}</b>', order.hold_reason, _("挂起"))

    def get_search_results(self, request, queryset, search_term):
        """Memos are searched too: an EXISTS on the memo table (by its order index), so a
        match never duplicates an order row and the million-row list keeps its plan."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            memo = OrderMemo.objects.filter(order=OuterRef("pk"), text__icontains=term)
            results = results | queryset.filter(Exists(memo))
        return results, may_have_duplicates

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = self.get_object(request, object_id)
        if order is not None:
            extra_context = {**(extra_context or {}), **self._console_context(request, order)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _console_context(self, request, order: Order) -> dict:
        user = request.user
        flags = list(order.review_flags)
        manual_pending = ReviewFlag.MANUAL in flags
        can_review = (manual_pending and user.has_perm("orders.review_manual_order")) or (
            not manual_pending and flags and order.status == OrderStatus.PAID and user.has_perm("orders.review_order")
        )
        return {
            "console": {
                "memos": list(order.memos.select_related("author").order_by("-created_at", "-id")),
                "can_memo": user.has_perm("orders.add_ordermemo"),
                "memo_form": MemoForm(),
                "can_hold": user.has_perm("orders.hold_order") and order.held_at is None and order.status in HOLDABLE,
                "can_release": user.has_perm("orders.hold_order") and order.held_at is not None,
                "hold_form": HoldForm(),
                "flags": [ReviewFlag(flag).label for flag in flags if flag in ReviewFlag.values],
                "manual_pending": manual_pending,
                "can_review": can_review,
                "review_form": ReviewForm(),
                "can_correct_address": user.has_perm("orders.change_address") and order.is_before_shipment,
            }
        }

    def get_urls(self):
        def view(name, func):
            return path(f"<int:order_id>/{name}/", self.admin_site.admin_view(func), name=f"orders_order_{name}")

        console = [
            view("memo", self.memo_view),
            view("hold", self.hold_view),
            view("release", self.release_view),
            view("review", self.review_view),
            view("correct-address", self.correct_address_view),
            path("manual/add/", self.admin_site.admin_view(self.manual_add_view), name="orders_order_manual_add"),
        ]
        return [*console, *super().get_urls()]

    # --- views: each translates the request into one service call --------------------

    def _order_or_404(self, request, order_id: int) -> Order:
        order = self.get_object(request, str(order_id))
        if order is None or not self.has_view_permission(request, order):
            raise Http404
        return order

    def _back(self, order: Order):
        return HttpResponseRedirect(reverse("admin:orders_order_change", args=[order.pk]))

    def _run(self, request, call, success) -> bool:
        try:
            call()
        except DomainError as err:
            detail = gettext("；").join(str(msg) for msgs in (err.fields or {}).values() for msg in msgs)
            text = (
                gettext("%(message)s：%(details)s") % {"message": err.message, "details": detail}
                if detail
                else err.message
            )
            self.message_user(request, text, level=messages.ERROR)
            return False
        self.message_user(request, success, level=messages.SUCCESS)
        return True

    def memo_view(self, request, order_id: int):
        order = self._order_or_404(request, order_id)
        if request.method != "POST":
            raise Http404
        text = request.POST.get("text", "")
        self._run(request, lambda: order_memo_add(order=order, user=request.user, text=text), _("备注已保存"))
        return self._back(order)

    def hold_view(self, request, order_id: int):
        order = self._order_or_404(request, order_id)
        if request.method != "POST":
            raise Http404
        reason = request.POST.get("reason", "")
        self._run(
            request,
            lambda: order_hold(order=order, actor=Actor.staff(request.user), reason=reason),
            _("订单已挂起，仓库不会拣货，直到释放"),
        )
        return self._back(order)

    def release_view(self, request, order_id: int):
        order = self._order_or_404(request, order_id)
        if request.method != "POST":
            raise Http404
        self._run(
            request, lambda: order_release(order=order, actor=Actor.staff(request.user)), _("订单已释放，将进入分仓")
        )
        return self._back(order)

    def review_view(self, request, order_id: int):
        """复核通过: a manual order's second review, else the review of a flagged paid order."""
        order = self._order_or_404(request, order_id)
        if request.method != "POST":
            raise Http404
        actor, note = Actor.staff(request.user), request.POST.get("note", "")
        if ReviewFlag.MANUAL in order.review_flags:
            self._run(
                request,
                lambda: order_manual_approve(order=order, actor=actor, note=note),
                _("手动录入订单已复核"),
            )
        else:
            self._run(request, lambda: order_approve(order=order, actor=actor, note=note), _("已复核并审核通过"))
        return self._back(order)

    def correct_address_view(self, request, order_id: int):
        order = self._order_or_404(request, order_id)
        form = AddressCorrectionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            changes = form.changes()
            if not changes:
                form.add_error(None, _("请至少修改一项"))
            elif self._run(
                request,
                lambda: order_change_address(order=order, actor=Actor.staff(request.user), address=changes),
                _("收货地址已修改，原地址和新地址已记入时间线"),
            ):
                return self._back(order)
        return self._form_page(request, _("修改收货地址和电话"), form, order=order)

    def manual_add_view(self, request):
        if not request.user.has_perm("orders.add_manual_order"):
            self.message_user(request, _("您没有执行此操作的权限：可手动录入订单"), level=messages.ERROR)
            return HttpResponseRedirect(reverse("admin:orders_order_changelist"))
        form = ManualOrderForm(request.POST or None, initial={"external_id": manual_external_id()})
        lines = ManualLineFormSet(request.POST or None, prefix="lines")
        if request.method == "POST" and form.is_valid() and lines.is_valid():
            data = form.cleaned_data
            chosen = [line for line in lines.cleaned_data if line.get("sku")]
            created = {}

            def enter():
                created["order"], _new = order_manual_create(
                    user=request.user,
                    external_id=data["external_id"],
                    payment_method=data["payment_method"],
                    customer={"name": data["customer_name"], "mobile": data["customer_mobile"]},
                    shipping_address={
                        "receiver": data["receiver"],
                        "phone": data["receiver_phone"],
                        "province": data["province"],
                        "city": data["city"],
                        "district": data["district"],
                        "detail": data["detail"],
                        "postcode": data["postcode"],
                    },
                    lines=[{"sku": line["sku"].code, "quantity": line["quantity"]} for line in chosen],
                    remark=data["remark"],
                )

            if self._run(request, enter, _("已录入订单，等待另一位员工复核")):
                return self._back(created["order"])
        return self._form_page(request, _("手动录入订单"), form, lines=lines)

    def _form_page(self, request, title, form, *, order: Order | None = None, lines=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "form": form,
            "lines": lines,
            "original": order,
        }
        return render(request, "admin/orders/order/console_form.html", context)
