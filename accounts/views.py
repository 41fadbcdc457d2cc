"""/admin/2fa/setup/ (enrol a TOTP authenticator) and /admin/2fa/verify/ (enter a code after the password)."""

from __future__ import annotations

from base64 import b32encode

import segno
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from . import services
from .forms import TokenForm
from .policy import confirmed_totp_device, otp_required_by_role


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("admin:index")


def _page(request, template: str, form: TokenForm, **context):
    context = admin.site.each_context(request) | context
    context |= {"form": form, "next": _next_url(request), "required": otp_required_by_role(request.user)}
    return render(request, template, context)


@never_cache
@staff_member_required
def otp_setup(request):
    if confirmed_totp_device(request.user) is not None:
        if request.user.is_verified():
            messages.info(request, _("两步验证已启用。如需更换手机，请联系主管删除旧的验证设备后重新绑定。"))
            return redirect(_next_url(request))
        return redirect(f"{reverse('accounts:otp-verify')}?{request.GET.urlencode()}")
    device = services.totp_device_start(user=request.user)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if services.totp_device_confirm(request=request, device=device, token=form.cleaned_data["token"]):
            messages.success(request, _("两步验证已启用，以后登录时需输入验证器应用中的验证码。"))
            return redirect(_next_url(request))
        form.add_error("token", _("验证码不正确或已过期，请输入应用中当前显示的验证码。"))
    config_url = device.config_url
    qr_svg = segno.make(config_url, error="m").svg_inline(scale=5, dark="#000", light="#fff")
    return _page(
        request,
        "accounts/otp_setup.html",
        form,
        title=_("绑定两步验证"),
        config_url=config_url,
        qr_svg=mark_safe(qr_svg),  # segno's own markup; the URL inside is XML-escaped
        secret=b32encode(device.bin_key).decode(),
    )


@never_cache
@staff_member_required
def otp_verify(request):
    if request.user.is_verified():
        return redirect(_next_url(request))
    if confirmed_totp_device(request.user) is None:
        return redirect(f"{reverse('accounts:otp-setup')}?{request.GET.urlencode()}")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if services.otp_verify(request=request, token=form.cleaned_data["token"]):
            return redirect(_next_url(request))
        form.add_error("token", _("验证码不正确或已过期。多次输错后需等待片刻再试。"))
    return _page(request, "accounts/otp_verify.html", form, title=_("两步验证"))
