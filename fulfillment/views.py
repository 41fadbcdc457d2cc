"""HTTP entry points of fulfillment: the tracking provider's push."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .tracking import tracking_push_receive


@csrf_exempt
@require_POST
def kuaidi100_push(request: HttpRequest) -> JsonResponse:
    """Kuaidi100's push: form fields `param` and `sign`; the answer is the JSON it expects."""
    status, body = tracking_push_receive(param=request.POST.get("param", ""), sign=request.POST.get("sign", ""))
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})
