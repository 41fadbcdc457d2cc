"""The sandbox's Alipay OpenAPI face: `gateway.do` as Alipay would answer it.

Checks our app's request signature with our app public key, then answers in Alipay's JSON shape
signed with the sandbox "Alipay platform" key, using Alipay's own codes and sub_codes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from payments.gateways.alipay import alipay_signing_string, parse_alipay_time, parse_amount
from payments.gateways.crypto import CryptoError, rsa_verify

from . import messages
from .keys import ALIPAY_APP_ID, SandboxKeys, sandbox_keys
from .models import SandboxChannel, SandboxTrade
from .services import (
    SandboxError,
    refunded_total,
    sandbox_refund,
    sandbox_trade_close,
    sandbox_trade_lookup,
    sandbox_trade_open,
)

CHANNEL = SandboxChannel.ALIPAY
PAGE_PAY = "alipay.trade.page.pay"
API_METHODS = ("alipay.trade.query", "alipay.trade.close", "alipay.trade.refund")
MAX_AMOUNT = Decimal("100000000.00")


def request_params(request: HttpRequest) -> dict[str, str] | None:
    """Query string and form fields together (SDKs split them), or None if a key repeats."""
    params: dict[str, str] = {}
    for source in (request.GET, request.POST):
        for key, values in source.lists():
            if key in params or len(values) != 1:
                return None
            params[key] = values[0]
    return params


def request_problem(params: Mapping[str, str], keys: SandboxKeys) -> dict[str, str] | None:
    """Alipay's 40001/40002 answer for a request it will not run, or None when it is ours and intact."""
    for required in ("app_id", "method", "sign_type", "sign", "timestamp", "version", "charset"):
        if not params.get(required):
            return {"code": "40001", "msg": "Missing Required Arguments", "sub_code": f"isv.missing-{required}"}
    if params["app_id"] != ALIPAY_APP_ID:
        return messages.alipay_invalid_arguments("isv.invalid-app-id", "无效的AppID参数")
    if params["sign_type"] != "RSA2":
        return messages.alipay_invalid_arguments("isv.invalid-signature-type", "无效的签名类型")
    if params["charset"].lower() != "utf-8":
        return messages.alipay_invalid_arguments("isv.invalid-charset", "沙箱仅支持 utf-8")
    try:
        parse_alipay_time(params["timestamp"])
    except ValueError:
        return messages.alipay_invalid_arguments("isv.invalid-timestamp", "非法的时间戳参数")
    try:
        rsa_verify(keys.alipay_app_public_pem, alipay_signing_string(params, include_sign_type=True), params["sign"])
    except CryptoError:
        return messages.alipay_invalid_arguments("isv.invalid-signature", "验签出错，请确认签名与应用公钥匹配")
    return None


def biz_content(params: Mapping[str, str]) -> dict[str, Any] | None:
    try:
        content = json.loads(params.get("biz_content") or "{}")
    except ValueError:
        return None
    return content if isinstance(content, dict) else None


def money(value: object) -> Decimal | None:
    """A positive amount of at most MAX_AMOUNT with at most two places, or None."""
    try:
        amount = parse_amount(str(value))
    except ValueError:
        return None
    return amount if Decimal("0") < amount <= MAX_AMOUNT else None


def answer(method: str, node: Mapping[str, Any], keys: SandboxKeys) -> HttpResponse:
    return HttpResponse(messages.alipay_answer_text(method, node, keys), content_type="application/json; charset=utf-8")


def error_page(request: HttpRequest, code: str, message: str, status: int = 400) -> HttpResponse:
    return render(
        request,
        "sandbox/cashier.html",
        {"mode": "error", "error_code": code, "error_message": message, "channel_label": "支付宝"},
        status=status,
    )


def handle_gateway(request: HttpRequest) -> HttpResponse:
    """Entry for every `gateway.do` call: page pay from the browser, the rest from our server."""
    keys = sandbox_keys()
    params = request_params(request)
    method = (params or {}).get("method", "")
    if method == PAGE_PAY:
        if params is None or (problem := request_problem(params, keys)):
            return error_page(
                request, (problem or {}).get("sub_code", "isv.invalid-parameter"), "请求参数有误或验签失败"
            )
        return page_pay(request, params)
    if params is None:
        return answer("error", messages.alipay_invalid_arguments("isv.invalid-parameter", "参数重复"), keys)
    if method not in API_METHODS:
        return answer("error", messages.alipay_invalid_arguments("isv.invalid-method", "不存在的方法名"), keys)
    if problem := request_problem(params, keys):
        return answer(method, problem, keys)
    content = biz_content(params)
    if content is None or not content.get("out_trade_no"):
        return answer(method, messages.alipay_invalid_arguments("isv.invalid-biz-content", "biz_content 无效"), keys)
    handler = {"alipay.trade.query": query, "alipay.trade.close": close, "alipay.trade.refund": refund}[method]
    return answer(method, handler(content), keys)


def page_pay(request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
    """Create (or find again) the trade, then send the browser to the cashier."""
    content = biz_content(params)
    if content is None:
        return error_page(request, "isv.invalid-biz-content", "biz_content 不是合法的 JSON")
    out_trade_no = str(content.get("out_trade_no", ""))
    amount = money(content.get("total_amount", ""))
    subject = str(content.get("subject", ""))
    if not out_trade_no or len(out_trade_no) > 64 or amount is None or not subject:
        return error_page(request, "ACQ.INVALID_PARAMETER", "out_trade_no、total_amount 或 subject 无效")
    if content.get("product_code") != "FAST_INSTANT_TRADE_PAY":
        return error_page(request, "ACQ.INVALID_PARAMETER", "product_code 必须为 FAST_INSTANT_TRADE_PAY")
    time_expire = None
    if content.get("time_expire"):
        try:
            time_expire = parse_alipay_time(str(content["time_expire"]))
        except ValueError:
            return error_page(request, "ACQ.INVALID_PARAMETER", "time_expire 格式应为 yyyy-MM-dd HH:mm:ss")
    try:
        trade = sandbox_trade_open(
            channel=CHANNEL,
            out_trade_no=out_trade_no,
            amount=amount,
            subject=subject[:256],
            time_expire=time_expire,
            notify_url=params.get("notify_url", ""),
        )
    except SandboxError as exc:
        code = "ACQ.CONTEXT_INCONSISTENT" if exc.code == "amount_mismatch" else "ACQ.SYSTEM_ERROR"
        return error_page(request, code, exc.message)
    cashier = reverse("payments_sandbox:cashier", args=[trade.out_trade_no])
    return HttpResponseRedirect(f"{cashier}?channel={CHANNEL}")


def _trade_view(trade: SandboxTrade) -> dict[str, str]:
    paid = trade.status == SandboxTrade.Status.TRADE_SUCCESS or trade.paid_at is not None
    node = {
        "code": "10000",
        "msg": "Success",
        "out_trade_no": trade.out_trade_no,
        "trade_status": trade.status,
        "total_amount": messages.yuan(trade.amount),
        "buyer_pay_amount": messages.yuan(trade.amount) if paid else "0.00",
        "receipt_amount": messages.yuan(trade.amount) if paid else "0.00",
        "point_amount": "0.00",
        "invoice_amount": messages.yuan(trade.amount) if paid else "0.00",
    }
    if trade.trade_no:
        node["trade_no"] = trade.trade_no
    if paid:
        node.update(
            buyer_logon_id=messages.SANDBOX_BUYER_LOGON_ID,
            buyer_user_id=messages.SANDBOX_BUYER_ID,
            send_pay_date=messages.alipay_time_or_empty(trade.paid_at),
        )
    return node


def query(content: Mapping[str, Any]) -> dict[str, str]:
    trade = sandbox_trade_lookup(channel=CHANNEL, out_trade_no=str(content["out_trade_no"]))
    if trade is None:
        return messages.alipay_business_error("ACQ.TRADE_NOT_EXIST", "交易不存在")
    return _trade_view(trade)


def close(content: Mapping[str, Any]) -> dict[str, str]:
    out_trade_no = str(content["out_trade_no"])
    try:
        trade = sandbox_trade_close(channel=CHANNEL, out_trade_no=out_trade_no)
    except SandboxError as exc:
        sub_code = {
            "trade_not_exist": "ACQ.TRADE_NOT_EXIST",
            "trade_paid": "ACQ.TRADE_HAS_SUCCESS",
            "trade_closed": "ACQ.TRADE_STATUS_ERROR",
        }.get(exc.code, "ACQ.SYSTEM_ERROR")
        return messages.alipay_business_error(sub_code, exc.message)
    node = {"code": "10000", "msg": "Success", "out_trade_no": trade.out_trade_no}
    if trade.trade_no:
        node["trade_no"] = trade.trade_no
    return node


def refund(content: Mapping[str, Any]) -> dict[str, str]:
    """Synchronous refund, idempotent on out_request_no: a repeat answers 10000 with fund_change N."""
    out_trade_no = str(content["out_trade_no"])
    amount = money(content.get("refund_amount", ""))
    if amount is None:
        return messages.alipay_business_error("ACQ.INVALID_PARAMETER", "refund_amount 无效")
    try:
        refund_row, created = sandbox_refund(
            channel=CHANNEL,
            out_trade_no=out_trade_no,
            out_refund_no=str(content.get("out_request_no") or out_trade_no),
            amount=amount,
            reason=str(content.get("refund_reason", "")),
        )
    except SandboxError as exc:
        sub_code = {
            "trade_not_exist": "ACQ.TRADE_NOT_EXIST",
            "trade_not_paid": "ACQ.TRADE_STATUS_ERROR",
            "refund_exceeds": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
            "refund_mismatch": "ACQ.DISCORDANT_REPEAT_REQUEST",
        }.get(exc.code, "ACQ.SYSTEM_ERROR")
        return messages.alipay_business_error(sub_code, exc.message)
    trade = refund_row.trade
    return {
        "code": "10000",
        "msg": "Success",
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "buyer_logon_id": messages.SANDBOX_BUYER_LOGON_ID,
        "buyer_user_id": messages.SANDBOX_BUYER_ID,
        "fund_change": "Y" if created else "N",
        "refund_fee": messages.yuan(refunded_total(trade)),
        "gmt_refund_pay": messages.alipay_time_or_empty(refund_row.succeeded_at or timezone.now()),
    }
