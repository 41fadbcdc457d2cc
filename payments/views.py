"""Gateway notify endpoints. Thin: read the raw body, call the service, answer in the
gateway's own format. CSRF-exempt because gateways cannot send a token; the signature
is the authentication.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import Channel
from .services import MAX_NOTIFY_BYTES, payment_receive_notification

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
