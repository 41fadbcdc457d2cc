"""Staff logins: lockout after repeated failures, password rules, idle session expiry."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command

PASSWORD = "correct-horse-battery-staple"

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return User.objects.create_user("kefu01", password=PASSWORD, is_staff=True)


def login(client, password: str, username: str = "kefu01", ip: str = "203.0.113.7"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
    )


def test_lockout_after_the_failure_limit_refuses_even_the_right_password(client, staff):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        answer = login(client, "wrong-password")
        assert answer.status_code == 200  # the login form again, with its error
    locked = login(client, "wrong-password")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "登录已被暂时锁定" in page and "30 分钟" in page and "连续 5 次" in page

    right = login(client, PASSWORD)
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still anonymous


def test_lockout_is_per_username_and_ip(client, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong-password")
    assert login(client, PASSWORD, ip="198.51.100.9").status_code == 302  # another network: fine
    User.objects.create_user("kefu02", password=PASSWORD, is_staff=True)
    client.logout()
    assert login(client, PASSWORD, username="kefu02").status_code == 302  # another user, same IP: fine


def test_a_success_before_the_limit_clears_the_count(client, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "wrong-password")
    assert login(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "wrong-password").status_code == 200


def test_axes_reset_username_unlocks(client, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong-password")
    assert AccessAttempt.objects.filter(username="kefu01").exists()
    call_command("axes_reset_username", "kefu01")
    assert login(client, PASSWORD).status_code == 302


def test_lockout_expires_after_the_cool_off(client, staff, time_machine):
    time_machine.move_to("2026-03-01 10:00:00+08:00", tick=False)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong-password")
    assert login(client, PASSWORD).status_code == 429
    time_machine.move_to("2026-03-01 10:31:00+08:00", tick=False)
    assert login(client, PASSWORD).status_code == 302


@pytest.mark.parametrize(
    "password",
    ["short1!", "123456789012", "password123", "kefu01kefu"],
    ids=["too-short", "all-digits", "common", "like-the-username"],
)
def test_weak_passwords_are_refused(staff, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=staff)


def test_a_long_uncommon_password_passes(staff):
    validate_password("青花瓷-Teapot-Harbor-42", user=staff)


def test_minimum_length_is_ten():
    (validator,) = [v for v in settings.AUTH_PASSWORD_VALIDATORS if v["NAME"].endswith("MinimumLengthValidator")]
    assert validator["OPTIONS"]["min_length"] == 10


def test_sessions_expire_after_idle_minutes(client, staff):
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True  # idle-based: each request pushes expiry on
    client.force_login(staff)
    client.get("/admin/")
    assert client.session.get_expiry_age() == 30 * 60
    assert client.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 30 * 60


def test_idle_session_is_logged_out_and_an_active_one_is_not(client, staff, time_machine):
    time_machine.move_to("2026-03-01 09:00:00+08:00", tick=False)
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200
    time_machine.move_to("2026-03-01 09:25:00+08:00", tick=False)
    assert client.get("/admin/").status_code == 200  # active: expiry moves to 09:55
    time_machine.move_to("2026-03-01 09:50:00+08:00", tick=False)
    assert client.get("/admin/").status_code == 200
    time_machine.move_to("2026-03-01 10:21:00+08:00", tick=False)  # 31 idle minutes
    assert client.get("/admin/").status_code == 302


def test_environment_configures_the_lockout(monkeypatch):
    import subprocess
    import sys

    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.AXES_FAILURE_LIMIT, int(s.AXES_COOLOFF_TIME.total_seconds()), s.SESSION_COOKIE_AGE, "
        "','.join(s.OMS_2FA_REQUIRED_GROUPS))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "oms.settings.dev",
        "OMS_LOGIN_FAILURE_LIMIT": "3",
        "OMS_LOGIN_LOCKOUT_MINUTES": "60",
        "OMS_SESSION_IDLE_MINUTES": "15",
        "OMS_2FA_REQUIRED_GROUPS": "财务,运营",
    }
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["3", "3600", "900", "财务,运营"]
