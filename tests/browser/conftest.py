"""Browser tests: Playwright driving Debian's chromium against a live server.

They run in CI (.ci/run installs chromium and the CJK fonts). On a machine without chromium
they are skipped, except under CI=true, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.db import connections

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

from tests.fulfillment.conftest import hangzhou, stocked  # noqa: E402,F401 (fixtures for the parcel flows)


@pytest.fixture
def browser(monkeypatch):
    """A browser per test: Playwright's sync API runs an event loop in this thread while it
    is open, and Django refuses ORM calls under a running loop unless told it is safe, which
    it is here (the test's own ORM calls are plain sync code; the live server has its own
    threads). Closing it before the database is flushed keeps that exception to the test."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium fonts-noto-cjk)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()
        # While Playwright's loop runs, asgiref keeps Django's connections per context instead of
        # per thread, so the test's own connection is not the one pytest-django closes later, and
        # it kept the test database busy when the run ended. Close it here, in that context.
        connections.close_all()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture(autouse=True)
def _no_persistent_connections(monkeypatch):
    """chromium keeps its connections to the live server open, and with CONN_MAX_AGE > 0 the
    server thread behind one would keep its database session, so the test database could
    not be dropped at the end. The server threads close theirs after every request here."""
    from django.db import DEFAULT_DB_ALIAS, connections

    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "CONN_MAX_AGE", 0)


@pytest.fixture
def staff_login(live_server, django_user_model):
    """Make a staff user in `role` and log in through the real admin login form."""
    from django.apps import apps
    from django.contrib.auth.models import Group

    from oms.roles import sync_roles

    sync_roles(apps)  # a transactional test's flush empties the tables the migration filled

    def login(page, role: str, username: str):
        password = "Test-pass-2026!"
        user = django_user_model.objects.create_user(username, password=password, is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")
        return user

    return login
