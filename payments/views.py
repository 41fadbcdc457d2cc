"""Gateway notify endpoints. Thin: read the raw body, call the service, answer in the
gateway's own format. CSRF-exempt because gateways cannot send a token; the signature
is the authentication.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from oms.errors import DomainError
from orders.models import Order, OrderStatus
from orders.services import Actor

from .models import Channel
from .services import MAX_NOTIFY_BYTES, payment_receive_notification, payment_start

WECHAT_HEADERS = (
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Signature",
    "Wechatpay-Serial",
    "Wechatpay-Signature-Type",
)


def _too_large(request: HttpRequest) -> bool:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > MAX_NOTIFY_BYTES
    except ValueError:
        return True


@csrf_exempt
@require_POST
def alipay_notify(request: HttpRequest) -> HttpResponse:
    if _too_large(request):
        return HttpResponse("fail", status=413, content_type="text/plain")
    result = payment_receive_notification(channel=Channel.ALIPAY, body=request.body, headers={})
    return HttpResponse("success" if result.accepted else "fail", content_type="text/plain")


@csrf_exempt
@require_POST
def wechatpay_notify(request: HttpRequest) -> HttpResponse:
    if _too_large(request):
        return JsonResponse({"code": "FAIL", "message": "body too large"}, status=413)
    headers = {name: request.headers.get(name, "") for name in WECHAT_HEADERS}
    result = payment_receive_notification(channel=Channel.WECHATPAY, body=request.body, headers=headers)
    if result.accepted:
        return HttpResponse(status=204)
    return JsonResponse(
        {"code": "FAIL", "message": result.notification.verify_error or "verification failed"}, status=401
    )


@require_http_methods(["GET", "POST"])
def pay_page(request: HttpRequest, order_no: str) -> HttpResponse:
    """The one-click pay link in reminder messages: pick a channel, then on to the gateway.

    The order number is the capability (date + 10 random digits); the page shows no
    personal data beyond the goods and the amount.
    """
    order = get_object_or_404(Order.objects.select_related("storefront"), order_no=order_no)
    channels = [(c.value, c.label) for c in (Channel.ALIPAY, Channel.WECHATPAY)]
    context = {
        "order": order,
        "payable": order.status == OrderStatus.PENDING_PAYMENT,
        "channels": [(v, label) for v, label in channels if v in order.storefront.allowed_payment_methods],
    }
    if request.method == "POST" and context["payable"]:
        try:
            _payment, pay = payment_start(
                order=order, channel=request.POST.get("channel", ""), actor=Actor.storefront(order.storefront)
            )
        except DomainError as err:
            return render(request, "payments/pay.html", {**context, "error": err.message}, status=err.status_code)
        if pay.pay_url:
            return redirect(pay.pay_url)
        context["code_url"] = pay.code_url
    return render(request, "payments/pay.html", context)
