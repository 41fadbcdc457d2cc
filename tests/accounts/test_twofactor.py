"""TOTP two-factor: who is forced to it, enrolment with a QR code, verification after the password.

Codes are computed here from the device's key (RFC 6238), the way an authenticator app does.
The clock is frozen and moved by hand: a code is accepted once per 30-second step, and a wrong
code throttles the device for a second or more.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

PASSWORD = "correct-horse-battery-staple"
T0 = 1_772_330_400  # 2026-03-01 10:00:00 +08:00, on a 30-second boundary

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(time_machine):
    """Frozen time; `clock(seconds)` moves to T0 + seconds."""

    def move(seconds: int = 0) -> None:
        time_machine.move_to(T0 + seconds, tick=False)

    move(0)
    return move


def staff_user(username: str, *groups: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True, is_superuser=superuser)
    user.user_permissions.add(Permission.objects.get(codename="view_order"))
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


def password_login(client, username: str) -> None:
    answer = client.post("/admin/login/?next=/admin/", {"username": username, "password": PASSWORD})
    assert answer.status_code == 302, answer.content.decode()[:500]


def code_for(device: TOTPDevice) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


def wrong_code(device: TOTPDevice) -> str:
    return f"{(int(code_for(device)) + 1) % 10**6:06d}"


def test_finance_user_is_sent_to_enrol_until_a_correct_code(client, clock):
    staff_user("caiwu01", "财务")
    password_login(client, "caiwu01")

    for path in ("/admin/", "/admin/orders/order/", "/admin/payments/refund/", "/api/docs/"):
        answer = client.get(path)
        assert answer.status_code == 302, path
        assert answer["Location"].startswith("/admin/2fa/setup/?next="), path

    page = client.get("/admin/2fa/setup/?next=/admin/orders/order/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "otpauth://totp/OMS%3Acaiwu01?secret=" in html
    assert "<svg" in html and "qrline" in html  # the QR code, drawn on the server
    assert "cdn" not in html.lower() and '<script src="http' not in html
    assert "要求开启两步验证" in html
    device = TOTPDevice.objects.get(user__username="caiwu01")
    assert not device.confirmed
    assert client.get("/admin/2fa/setup/").content.decode().count(device.config_url.split("secret=")[1][:32]) >= 1

    refused = client.post("/admin/2fa/setup/", {"token": wrong_code(device), "next": "/admin/orders/order/"})
    assert refused.status_code == 200
    assert "验证码不正确" in refused.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert client.get("/admin/").status_code == 302

    clock(31)  # past the throttle after one wrong code, and into a fresh 30-second step
    accepted = client.post("/admin/2fa/setup/", {"token": code_for(device), "next": "/admin/orders/order/"})
    assert accepted.status_code == 302 and accepted["Location"] == "/admin/orders/order/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/orders/order/").status_code == 200


def test_an_enrolled_user_must_enter_a_code_after_every_password_login(client, clock):
    user = staff_user("zhuguan01", "主管")
    device = TOTPDevice.objects.create(user=user, name="OMS", confirmed=True)
    password_login(client, "zhuguan01")

    answer = client.get("/admin/orders/order/")
    assert answer.status_code == 302
    assert answer["Location"] == "/admin/2fa/verify/?next=%2Fadmin%2Forders%2Forder%2F"
    assert client.get("/admin/2fa/setup/").status_code == 302  # no second enrolment while unverified

    page = client.get(answer["Location"])
    assert page.status_code == 200 and "6 位验证码" in page.content.decode()
    refused = client.post("/admin/2fa/verify/", {"token": wrong_code(device), "next": "/admin/"})
    assert refused.status_code == 200 and "验证码不正确" in refused.content.decode()
    assert client.get("/admin/").status_code == 302
    not_digits = client.post("/admin/2fa/verify/", {"token": "abcdef", "next": "/admin/"})
    assert not_digits.status_code == 200 and "6 位数字" in not_digits.content.decode()

    clock(31)
    accepted = client.post("/admin/2fa/verify/", {"token": code_for(device), "next": "/admin/orders/order/"})
    assert accepted.status_code == 302 and accepted["Location"] == "/admin/orders/order/"
    assert client.get("/admin/orders/order/").status_code == 200

    # The same code cannot be used again, in another session, within its step.
    other = client.__class__()
    password_login(other, "zhuguan01")
    replay = other.post("/admin/2fa/verify/", {"token": code_for(device), "next": "/admin/"})
    assert replay.status_code == 200
    assert other.get("/admin/").status_code == 302


def test_staff_outside_the_groups_are_not_forced_but_may_enrol(client, clock):
    staff_user("kefu01", "客服")
    password_login(client, "kefu01")
    assert client.get("/admin/").status_code == 200
    page = client.get("/admin/2fa/setup/")
    assert page.status_code == 200
    assert "要求开启两步验证" not in page.content.decode()
    assert "两步验证" in client.get("/admin/").content.decode()  # the link beside the user links

    device = TOTPDevice.objects.get(user__username="kefu01")
    clock(30)
    assert client.post("/admin/2fa/setup/", {"token": code_for(device)}).status_code == 302

    # Having enrolled, they are asked for a code at their next login like everyone else.
    client.post("/admin/logout/")
    password_login(client, "kefu01")
    assert client.get("/admin/")["Location"].startswith("/admin/2fa/verify/")


def test_superusers_are_not_exempt(client, clock, settings):
    settings.OMS_2FA_REQUIRE_SUPERUSERS = True
    staff_user("root", superuser=True)
    password_login(client, "root")
    assert client.get("/admin/")["Location"].startswith("/admin/2fa/setup/")
    settings.OMS_2FA_REQUIRE_SUPERUSERS = False  # what `make run` uses for its demo superuser
    assert client.get("/admin/").status_code == 200


def test_groups_come_from_the_setting(client, clock, settings):
    settings.OMS_2FA_REQUIRED_GROUPS = ["运营"]
    staff_user("caiwu02", "财务")
    staff_user("yunying01", "运营")
    password_login(client, "caiwu02")
    assert client.get("/admin/").status_code == 200
    client.post("/admin/logout/")
    password_login(client, "yunying01")
    assert client.get("/admin/").status_code == 302


def test_an_unverified_user_can_still_log_out(client, clock):
    staff_user("caiwu03", "财务")
    password_login(client, "caiwu03")
    assert client.post("/admin/logout/").status_code == 200
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/2fa/setup/").status_code == 302  # anonymous: to the login page
    assert client.get("/admin/2fa/setup/")["Location"].startswith("/admin/login/")


def test_next_never_leaves_the_site(client, clock):
    user = staff_user("caiwu04", "财务")
    device = TOTPDevice.objects.create(user=user, name="OMS", confirmed=True)
    password_login(client, "caiwu04")
    answer = client.post("/admin/2fa/verify/", {"token": code_for(device), "next": "https://evil.example/admin/"})
    assert answer.status_code == 302 and answer["Location"] == "/admin/"


def test_storefront_api_is_untouched(api, tshirt):
    assert api.get("/api/v1/orders/nope/").status_code == 404


def test_force_login_verified_helper_skips_the_code(client):
    from tests.conftest import force_login_verified

    force_login_verified(client, staff_user("caiwu05", "财务"))
    assert client.get("/admin/orders/order/").status_code == 200
