"""The sandbox's WeChat Pay APIv3 face: native pay, query, close and refund, as the platform answers them.

Checks our `Authorization` signature with our merchant public key (named by serial_no), then
answers JSON signed with the sandbox platform key (Wechatpay-* headers), with WeChat's error codes.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone

from payments.gateways.crypto import CryptoError, rsa_verify
from payments.gateways.wechatpay import (
    MAX_CLOCK_SKEW_SECONDS,
    SIGNATURE_TYPE,
    fen_to_yuan,
    parse_rfc3339,
    rfc3339,
    signing_message,
)

from . import messages
from .keys import WECHATPAY_APPID, WECHATPAY_MCHID, SandboxKeys, sandbox_keys
from .models import SandboxChannel, SandboxRefund, SandboxTrade
from .services import (
    SandboxError,
    sandbox_refund,
    sandbox_trade_close,
    sandbox_trade_lookup,
    sandbox_trade_open,
)

CHANNEL = SandboxChannel.WECHATPAY
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')
_OUT_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{6,32}$")
MAX_FEN = 10**10


def signed_answer(status: int, data: Mapping[str, Any] | None, keys: SandboxKeys) -> HttpResponse:
    """A platform answer: JSON (or empty, for 204) with Wechatpay-* signature headers."""
    body = json.dumps(dict(data), ensure_ascii=False, separators=(",", ":")) if data is not None else ""
    response = HttpResponse(body.encode("utf-8"), status=status)
    if data is not None:
        response["Content-Type"] = "application/json; charset=utf-8"
    else:
        del response["Content-Type"]
    for name, value in messages.wechatpay_platform_headers(keys=keys, body=body, now=timezone.now()).items():
        response[name] = value
    response["Request-ID"] = uuid.uuid4().hex
    return response


def error(status: int, code: str, message: str, keys: SandboxKeys) -> HttpResponse:
    return signed_answer(status, {"code": code, "message": message}, keys)


def request_problem(request: HttpRequest, keys: SandboxKeys) -> str:
    """Why our request's Authorization does not check out, or "" when it does."""
    header = request.headers.get("Authorization", "")
    scheme, _, rest = header.partition(" ")
    if scheme != SIGNATURE_TYPE:
        return "认证类型不正确"
    params = dict(_AUTH_PARAM.findall(rest))
    if params.get("mchid") != WECHATPAY_MCHID:
        return "商户号不正确"
    if params.get("serial_no") != keys.wechatpay_merchant_cert_serial:
        return "商户证书序列号不正确"
    timestamp = params.get("timestamp", "")
    if not timestamp.isdigit() or abs(timezone.now().timestamp() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        return "时间戳超出有效范围"
    message = signing_message(
        request.method or "", request.get_full_path(), timestamp, params.get("nonce_str", ""), request.body
    )
    try:
        rsa_verify(keys.wechatpay_merchant_public_pem, message, params.get("signature", ""))
    except CryptoError:
        return "签名错误"
    return ""


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body.decode("utf-8"))
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _fen(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_FEN:
        return None
    return value


def _guarded(request: HttpRequest) -> tuple[SandboxKeys, HttpResponse | None]:
    keys = sandbox_keys()
    problem = request_problem(request, keys)
    return keys, (error(401, "SIGN_ERROR", problem, keys) if problem else None)


def native(request: HttpRequest) -> HttpResponse:
    """POST /v3/pay/transactions/native: open the trade, answer the cashier URL as code_url."""
    keys, refusal = _guarded(request)
    if refusal:
        return refusal
    body = _json_body(request)
    if body is None:
        return error(400, "PARAM_ERROR", "请求体不是合法的 JSON 对象", keys)
    if body.get("mchid") != WECHATPAY_MCHID or body.get("appid") != WECHATPAY_APPID:
        return error(400, "APPID_MCHID_NOT_MATCH", "appid 和 mchid 不匹配", keys)
    out_trade_no = body.get("out_trade_no")
    description = body.get("description")
    amount = body.get("amount") if isinstance(body.get("amount"), dict) else {}
    total = _fen(amount.get("total"))
    if not isinstance(out_trade_no, str) or not _OUT_NO.match(out_trade_no):
        return error(400, "PARAM_ERROR", "out_trade_no 应为 6-32 位字母、数字或 _-|*@", keys)
    if not isinstance(description, str) or not 0 < len(description) <= 127:
        return error(400, "PARAM_ERROR", "description 不能为空且不超过 127 个字符", keys)
    if total is None or amount.get("currency", "CNY") != "CNY":
        return error(400, "PARAM_ERROR", "amount.total 必须是正整数（分），币种 CNY", keys)
    if not isinstance(body.get("notify_url"), str) or not body["notify_url"]:
        return error(400, "PARAM_ERROR", "缺少 notify_url", keys)
    time_expire: datetime | None = None
    if body.get("time_expire"):
        try:
            time_expire = parse_rfc3339(str(body["time_expire"]))
        except ValueError:
            return error(400, "PARAM_ERROR", "time_expire 应为 RFC 3339 格式，如 2018-06-08T10:34:56+08:00", keys)
    try:
        trade = sandbox_trade_open(
            channel=CHANNEL,
            out_trade_no=out_trade_no,
            amount=fen_to_yuan(total),
            subject=description,
            time_expire=time_expire,
            notify_url=body["notify_url"],
        )
    except SandboxError as exc:
        if exc.code == "amount_mismatch":
            return error(403, "OUT_TRADE_NO_USED", "商户订单号重复", keys)
        return error(500, "SYSTEM_ERROR", exc.message, keys)
    if trade.status == SandboxTrade.Status.TRADE_SUCCESS:
        return error(400, "ORDERPAID", "该订单已支付", keys)
    if trade.status == SandboxTrade.Status.TRADE_CLOSED:
        return error(400, "ORDER_CLOSED", "订单已关闭", keys)
    cashier = reverse("payments_sandbox:cashier", args=[trade.out_trade_no])
    code_url = f"{settings.OMS_SITE_URL.rstrip('/')}{cashier}?channel={CHANNEL}"
    return signed_answer(200, {"code_url": code_url}, keys)


def _trade_view(trade: SandboxTrade) -> dict[str, Any]:
    total = messages.fen(trade.amount)
    if trade.status == SandboxTrade.Status.WAIT_BUYER_PAY:
        state, description = "NOTPAY", "订单未支付"
    elif trade.status == SandboxTrade.Status.TRADE_CLOSED:
        state, description = "CLOSED", "订单已关闭"
    elif trade.refunds.exists():
        state, description = "REFUND", "转入退款"
    else:
        state, description = "SUCCESS", "支付成功"
    view: dict[str, Any] = {
        "appid": WECHATPAY_APPID,
        "mchid": WECHATPAY_MCHID,
        "out_trade_no": trade.out_trade_no,
        "trade_state": state,
        "trade_state_desc": description,
        "attach": "",
        "amount": {"total": total, "currency": "CNY", "payer_currency": "CNY"},
    }
    if trade.paid_at:
        view.update(
            transaction_id=trade.trade_no,
            trade_type="NATIVE",
            bank_type="OTHERS",
            success_time=rfc3339(trade.paid_at),
            payer={"openid": messages.SANDBOX_OPENID},
        )
        view["amount"]["payer_total"] = total
    return view


def trade(request: HttpRequest, out_trade_no: str) -> HttpResponse:
    """GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=..."""
    keys, refusal = _guarded(request)
    if refusal:
        return refusal
    if request.GET.get("mchid") != WECHATPAY_MCHID:
        return error(400, "PARAM_ERROR", "mchid 不正确", keys)
    found = sandbox_trade_lookup(channel=CHANNEL, out_trade_no=out_trade_no)
    if found is None:
        return error(404, "ORDER_NOT_EXIST", "订单不存在", keys)
    return signed_answer(200, _trade_view(found), keys)


def close(request: HttpRequest, out_trade_no: str) -> HttpResponse:
    """POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close: 204, also when already closed."""
    keys, refusal = _guarded(request)
    if refusal:
        return refusal
    body = _json_body(request)
    if body is None or body.get("mchid") != WECHATPAY_MCHID:
        return error(400, "PARAM_ERROR", "mchid 不正确", keys)
    try:
        sandbox_trade_close(channel=CHANNEL, out_trade_no=out_trade_no)
    except SandboxError as exc:
        if exc.code == "trade_paid":
            return error(400, "ORDERPAID", "该订单已支付", keys)
        if exc.code == "trade_not_exist":
            return error(404, "ORDER_NOT_EXIST", "订单不存在", keys)
        if exc.code != "trade_closed":
            return error(500, "SYSTEM_ERROR", exc.message, keys)
    return signed_answer(204, None, keys)


def _refund_view(refund: SandboxRefund, *, first_answer: bool) -> dict[str, Any]:
    """The refund as the API shows it. The first answer is always PROCESSING, like the real platform."""
    total, amount = messages.fen(refund.trade.amount), messages.fen(refund.amount)
    status = SandboxRefund.Status.PROCESSING if first_answer else refund.status
    view: dict[str, Any] = {
        "refund_id": refund.refund_no,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": refund.trade.trade_no,
        "out_trade_no": refund.trade.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339(refund.created_at),
        "status": str(status),
        "funds_account": "AVAILABLE",
        "amount": {
            "total": total,
            "refund": amount,
            "payer_total": total,
            "payer_refund": amount,
            "settlement_total": total,
            "settlement_refund": amount,
            "discount_refund": 0,
            "currency": "CNY",
        },
    }
    if status == SandboxRefund.Status.SUCCESS and refund.succeeded_at:
        view["success_time"] = rfc3339(refund.succeeded_at)
    return view


REFUND_ERRORS = {
    "trade_not_exist": (404, "RESOURCE_NOT_EXISTS", "订单不存在"),
    "trade_not_paid": (400, "INVALID_REQUEST", "订单未支付或已关闭，不能退款"),
    "refund_exceeds": (400, "INVALID_REQUEST", "申请退款金额超过订单可退金额"),
    "refund_mismatch": (400, "INVALID_REQUEST", "退款请求参数与首次请求不一致"),
    "total_mismatch": (400, "PARAM_ERROR", "订单金额 total 与原订单不一致"),
}


def refunds(request: HttpRequest) -> HttpResponse:
    """POST /v3/refund/domestic/refunds, idempotent on out_refund_no."""
    keys, refusal = _guarded(request)
    if refusal:
        return refusal
    body = _json_body(request)
    if body is None:
        return error(400, "PARAM_ERROR", "请求体不是合法的 JSON 对象", keys)
    amount = body.get("amount") if isinstance(body.get("amount"), dict) else {}
    refund_fen, total_fen = _fen(amount.get("refund")), _fen(amount.get("total"))
    out_trade_no, out_refund_no = body.get("out_trade_no"), body.get("out_refund_no")
    if not isinstance(out_trade_no, str) and isinstance(body.get("transaction_id"), str):
        by_transaction = SandboxTrade.objects.filter(channel=CHANNEL, trade_no=body["transaction_id"]).first()
        out_trade_no = by_transaction.out_trade_no if by_transaction else body["transaction_id"]
    if not isinstance(out_trade_no, str) or not isinstance(out_refund_no, str) or not _OUT_NO.match(out_refund_no):
        return error(400, "PARAM_ERROR", "缺少 out_trade_no，或 out_refund_no 不是 6-32 位", keys)
    if refund_fen is None or total_fen is None or amount.get("currency", "CNY") != "CNY":
        return error(400, "PARAM_ERROR", "amount.refund / amount.total 必须是正整数（分），币种 CNY", keys)
    try:
        refund, created = sandbox_refund(
            channel=CHANNEL,
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            amount=fen_to_yuan(refund_fen),
            total=fen_to_yuan(total_fen),
            reason=str(body.get("reason", "")),
        )
    except SandboxError as exc:
        status, code, message = REFUND_ERRORS.get(exc.code, (500, "SYSTEM_ERROR", exc.message))
        return error(status, code, message, keys)
    return signed_answer(200, _refund_view(refund, first_answer=created), keys)
