"""Project-level behaviour: docs, throttling, management commands."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command

from orders.models import Order, Storefront, StorefrontAPIKey


def test_schema_and_offline_docs(client, db):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/orders/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist" in page  # served locally, not from a CDN
    assert "cdn." not in page


def test_throttle_is_per_storefront(api, monkeypatch, tshirt):
    from orders.api.auth import StorefrontRateThrottle
    from tests.conftest import client_for

    monkeypatch.setattr(StorefrontRateThrottle, "THROTTLE_RATES", {"storefront": "3/min"})
    cache.clear()
    codes = [api.get("/api/v1/orders/nope/").status_code for _ in range(4)]
    assert codes == [404, 404, 404, 429]
    assert api.get("/api/v1/orders/nope/").json()["code"] == "throttled"
    other = client_for(Storefront.objects.create(code="other", name="Other"))
    assert other.get("/api/v1/orders/nope/").status_code == 404  # its own budget
    cache.clear()


def test_create_storefront_prints_a_working_key_once(db, client):
    out = StringIO()
    call_command("create_storefront", "Mini Program", "--code", "mini", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    stored = StorefrontAPIKey.objects.get(storefront__code="mini")
    assert key not in (stored.hashed_key, stored.id)  # only the hash is stored
    assert client.get("/api/v1/orders/nope/", HTTP_AUTHORIZATION=f"Api-Key {key}").status_code == 404
    assert client.get("/api/v1/orders/nope/", HTTP_AUTHORIZATION=f"Api-Key {key}x").status_code == 401


def test_seed_demo_is_idempotent(db, tmp_path, monkeypatch):
    from orders.management.commands import seed_demo

    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", tmp_path / "demo.json")
    call_command("seed_demo", stdout=StringIO())
    counts = Order.objects.count(), StorefrontAPIKey.objects.count()
    call_command("seed_demo", stdout=StringIO())
    assert (Order.objects.count(), StorefrontAPIKey.objects.count()) == counts
    statuses = set(Order.objects.values_list("status", flat=True))
    assert statuses == {"pending_payment", "paid", "awaiting_shipment", "shipped", "completed", "cancelled"}
    credentials = json.loads((tmp_path / "demo.json").read_text())
    assert StorefrontAPIKey.objects.is_valid(credentials["api_key"])
    from django.contrib.auth import authenticate
    from django.test import RequestFactory

    login_request = RequestFactory().post("/admin/login/")  # django-axes checks logins per request
    assert authenticate(login_request, username="admin", password=credentials["admin_password"]) is not None
    # a stale credentials file (another database) gets a fresh, working password
    (tmp_path / "demo.json").write_text(json.dumps({**credentials, "admin_password": "stale"}))
    call_command("seed_demo", stdout=StringIO())
    fresh = json.loads((tmp_path / "demo.json").read_text())["admin_password"]
    fresh_staff = json.loads((tmp_path / "demo.json").read_text())["staff"]
    assert fresh != "stale" and authenticate(login_request, username="admin", password=fresh) is not None
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"客服", "仓储", "财务", "运营", "主管"}
    for username, role in seed_demo.DEMO_STAFF.items():  # one working personal login per role
        user = authenticate(login_request, username=username, password=fresh_staff[username])
        assert user is not None and list(user.groups.values_list("name", flat=True)) == [role]


@pytest.mark.parametrize("settings_module", ["oms.settings.prod"])
def test_production_settings_require_a_secret_key(settings_module):
    env = {"DJANGO_SETTINGS_MODULE": settings_module, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


SHOW_SETTINGS = (
    "import os; from django.conf import settings; "
    "print(os.environ['DJANGO_SETTINGS_MODULE'], settings.OMS_SANDBOX_ENABLED)"
)


def settings_seen_by(*command: str) -> str:
    """Run `command` in the repository with no DJANGO_SETTINGS_MODULE; its last line of output."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "OMS_SANDBOX_ENABLED")}
    env["SECRET_KEY"] = secrets.token_urlsafe(64)
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ["oms.wsgi", "oms.asgi", "oms.celery"])
def test_servers_default_to_production_settings(module):
    """gunicorn, an ASGI server or celery started without DJANGO_SETTINGS_MODULE get prod, sandbox off."""
    assert settings_seen_by(sys.executable, "-c", f"import {module}\n{SHOW_SETTINGS}") == "oms.settings.prod False"


def test_the_wsgi_application_freezes_what_it_loaded():
    """oms.wsgi moves the objects loaded at start out of the garbage collector's walks."""
    frozen = settings_seen_by(sys.executable, "-c", "import gc, oms.wsgi\nprint(gc.get_freeze_count())")
    assert int(frozen) > 50_000


def test_manage_py_keeps_the_dev_settings_with_the_sandbox_on():
    assert settings_seen_by(sys.executable, "manage.py", "shell", "-c", SHOW_SETTINGS) == "oms.settings.dev True"


def test_schema_documents_the_error_answers(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["components"]["schemas"]["Error"]["required"] == ["code", "message"]
    detail = schema["paths"]["/api/v1/orders/{order_no}/"]["get"]["responses"]
    assert {"200", "401", "404", "429"} <= set(detail)
    assert detail["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    create = schema["paths"]["/api/v1/orders/"]["post"]["responses"]
    assert {"200", "201", "400", "401", "403", "409", "415", "429"} <= set(create)
    lines = schema["components"]["schemas"]["OrderCreate"]["properties"]["lines"]
    assert (lines["minItems"], lines["maxItems"]) == (1, 100)


def test_the_compose_stack_backs_up_the_database_with_the_ops_scripts():
    """pg_dump refuses a server newer than itself, and an older pg_restore cannot read a newer
    archive, so the backup runs in the database's own image. The scripts are tested for real in
    tests/oms/test_backup_restore.py."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    services = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    backup = services["backup"]
    assert backup["image"] == services["postgres"]["image"]
    # ops/restore.sh runs in the web image, whose pg_restore must be as new as that pg_dump.
    major = services["postgres"]["image"].removeprefix("postgres:").split(".")[0]
    assert f"ARG PG_MAJOR={major}\n" in (root / "Dockerfile").read_text()
    assert backup["command"] == ["sh", "/ops/backup-schedule.sh"]
    assert backup["environment"]["PGDATABASE"] == services["postgres"]["environment"]["POSTGRES_DB"]
    assert backup["environment"]["BACKUP_INTERVAL_SECONDS"] == "${BACKUP_INTERVAL_SECONDS:-86400}"
    assert backup["environment"]["BACKUP_KEEP_DAYS"] == "${BACKUP_KEEP_DAYS:-14}"
    assert "backups:/backups" in backup["volumes"] and "backups:/backups:ro" in services["web"]["volumes"]
