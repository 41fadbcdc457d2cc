"""HTTP entry points of the sandbox gateway.

Gateway endpoints are CSRF-exempt (our server calls them and signs every request); the cashier
page is an ordinary form with a CSRF token, which the demo user clicks in a browser.

Every view is wrapped in `sandbox_only`: with OMS_SANDBOX_ENABLED off (production's default)
the whole sandbox answers 404, decided per request so a changed setting takes effect at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from payments.gateways import sandbox_enabled

from . import alipay_api, wechatpay_api
from .keys import ALIPAY_SELLER_ID, WECHATPAY_MCHID
from .models import SandboxChannel, SandboxTrade
from .services import SandboxError, SandboxFaults, sandbox_pay, sandbox_trade_lookup

MAX_DELAY_SECONDS = 24 * 3600

View = Callable[..., HttpResponse]


def sandbox_only(view: View) -> View:
    """404 unless the sandbox is enabled: its cashier marks orders paid, and it needs no login.

    The CSRF check of a view that has one moves inside, after the switch, so a disabled sandbox
    answers 404 to every request, a token-less POST included, rather than 403.
    """
    inner = view if getattr(view, "csrf_exempt", False) else csrf_protect(view)

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not sandbox_enabled():
            raise Http404("the sandbox gateway is off")
        return inner(request, *args, **kwargs)

    guarded.csrf_exempt = True  # type: ignore[attr-defined]  # checked by `inner` instead
    return guarded


@sandbox_only
@csrf_exempt
@require_http_methods(["GET", "POST"])
def alipay_gateway(request: HttpRequest) -> HttpResponse:
    return alipay_api.handle_gateway(request)


@sandbox_only
@csrf_exempt
@require_POST
def wechatpay_native(request: HttpRequest) -> HttpResponse:
    return wechatpay_api.native(request)


@sandbox_only
@csrf_exempt
@require_GET
def wechatpay_trade(request: HttpRequest, out_trade_no: str) -> HttpResponse:
    return wechatpay_api.trade(request, out_trade_no)


@sandbox_only
@csrf_exempt
@require_POST
def wechatpay_close(request: HttpRequest, out_trade_no: str) -> HttpResponse:
    return wechatpay_api.close(request, out_trade_no)


@sandbox_only
@csrf_exempt
@require_POST
def wechatpay_refunds(request: HttpRequest) -> HttpResponse:
    return wechatpay_api.refunds(request)


class CashierForm(forms.Form):
    """The buyer's choice plus the faults a developer wants injected into the notify."""

    action = forms.ChoiceField(choices=[("pay", "支付"), ("cancel", "取消")])
    duplicate = forms.BooleanField(required=False, label="重复投递（同一通知ID发送两次）")
    bad_signature = forms.BooleanField(required=False, label="错误签名")
    tampered_amount = forms.BooleanField(required=False, label="篡改金额（签名后修改）")
    delay_seconds = forms.IntegerField(required=False, min_value=0, max_value=MAX_DELAY_SECONDS, label="延迟投递（秒）")

    def faults(self) -> SandboxFaults:
        data = self.cleaned_data
        return SandboxFaults(
            duplicate=data["duplicate"],
            bad_signature=data["bad_signature"],
            tampered_amount=data["tampered_amount"],
            delay_seconds=data["delay_seconds"] or 0,
        )


def _cashier_context(trade: SandboxTrade, **extra: object) -> dict[str, object]:
    alipay = trade.channel == SandboxChannel.ALIPAY
    return {
        "trade": trade,
        "channel_label": "支付宝" if alipay else "微信支付",
        "merchant": f"沙箱商户（{'卖家ID' if alipay else '商户号'} {ALIPAY_SELLER_ID if alipay else WECHATPAY_MCHID}）",
        **extra,
    }


@sandbox_only
@require_http_methods(["GET", "POST"])
def cashier(request: HttpRequest, out_trade_no: str) -> HttpResponse:
    """收银台: shows the trade; 支付 pays it (and queues the notify), 取消 leaves it unpaid."""
    channel = request.GET.get("channel") or request.POST.get("channel") or ""
    trades = SandboxTrade.objects.filter(out_trade_no=out_trade_no)
    if channel:
        trades = trades.filter(channel=channel)
    found = list(trades[:2])
    if len(found) != 1:
        message = "交易不存在" if not found else "该单号在两个渠道都存在，请在地址中加上 ?channel=alipay 或 wechatpay"
        return render(request, "sandbox/cashier.html", {"mode": "error", "error_message": message}, status=404)
    trade = found[0]
    if request.method == "GET":
        trade = sandbox_trade_lookup(channel=trade.channel, out_trade_no=trade.out_trade_no) or trade
        mode = {SandboxTrade.Status.TRADE_SUCCESS: "paid", SandboxTrade.Status.TRADE_CLOSED: "closed"}.get(
            trade.status, "pay"
        )
        return render(request, "sandbox/cashier.html", _cashier_context(trade, mode=mode, form=CashierForm()))
    form = CashierForm(request.POST)
    if not form.is_valid():
        return render(request, "sandbox/cashier.html", _cashier_context(trade, mode="pay", form=form), status=400)
    if form.cleaned_data["action"] == "cancel":
        return render(request, "sandbox/cashier.html", _cashier_context(trade, mode="cancelled"))
    try:
        trade = sandbox_pay(channel=trade.channel, out_trade_no=trade.out_trade_no, faults=form.faults())
    except SandboxError as exc:
        context = _cashier_context(trade, mode="error", error_code=exc.code, error_message=exc.message)
        return render(request, "sandbox/cashier.html", context, status=409)
    return render(request, "sandbox/cashier.html", _cashier_context(trade, mode="paid"))
