"""English is the second language of the staff console; Chinese stays the default.

- An English admin (browser asks for `en`, or the header switch chose it) shows no Chinese of
  ours on the order, shipment and after-sales pages; only the data (names, addresses, SKUs) may be.
- The Chinese admin (no Accept-Language, or one we do not offer) has no English UI leftovers.
- Every msgid in locale/en has an English msgstr, every Chinese string of the code is in it (so a
  merge that brings new strings fails here until `make messages` is run and they are translated),
  and the compiled .mo matches the .po.

`untranslated_cjk` and `english_leftovers` are meant for more pages: add a page's URL to
`ADMIN_PAGES` (or call them in its own test) when it lands.
"""

from __future__ import annotations

import ast
import gettext
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

from aftersales.models import Aftersale
from aftersales.services import aftersale_create
from fulfillment.models import PickWave, Shipment
from fulfillment.services import pick_wave_start
from inventory.models import Warehouse
from orders.events import Actor
from orders.models import Order, Storefront
from orders.pii import mask_address
from tests.aftersales.conftest import delivered_order
from tests.conftest import force_login_verified
from tests.fulfillment.conftest import allocated, guangzhou, hangzhou, order_for, paid, stocked  # noqa: F401 (fixtures)
from tests.fulfillment.factories import ship_whole_order

CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
PO_FILE = Path(settings.BASE_DIR) / "locale" / "en" / "LC_MESSAGES" / "django.po"
MO_FILE = PO_FILE.with_suffix(".mo")
SYSTEM = Actor.system("test")

# Attributes a person reads (tooltips, button captions, placeholders), besides the text itself.
VISIBLE_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt"}
BUTTON_INPUT_TYPES = {"submit", "button", "reset"}


class _VisibleText(HTMLParser):
    """Text nodes and readable attributes of an HTML page, without <script>/<style>/<template>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fragments: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self._hidden += 1
        values = dict(attrs)
        for name in VISIBLE_ATTRIBUTES & values.keys():
            self._add(values[name])
        if tag == "input" and (values.get("type") or "").lower() in BUTTON_INPUT_TYPES:
            self._add(values.get("value"))

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self._add(data)

    def _add(self, text: str | None) -> None:
        text = " ".join((text or "").split())
        if text:
            self.fragments.append(text)


def visible_text(html: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return parser.fragments


def untranslated_cjk(html: str, allow: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The visible text fragments of a page that still hold Chinese once the `allow`ed data
    values (customer names, addresses, SKU names: data, not UI) are taken out. Empty is good."""
    allowed = sorted({value for value in allow if value}, key=len, reverse=True)
    offending: list[str] = []
    for fragment in visible_text(html):
        rest = fragment
        for value in allowed:
            rest = rest.replace(value, "")
        if CJK.search(rest) and fragment not in offending:
            offending.append(fragment)
    return offending


def english_leftovers(html: str, words: list[str] | tuple[str, ...]) -> list[str]:
    """The visible fragments of a (Chinese) page that contain one of `words` as a whole word."""
    patterns = [re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])") for word in words]
    return [fragment for fragment in visible_text(html) if any(p.search(fragment) for p in patterns)]


# English a Chinese page must not show: Django's own admin strings are translated by Django; these
# are the ones our templates, admin actions and libraries without a zh-hans catalogue could leak.
ENGLISH_UI_WORDS = (
    "Apply",
    "None",
    "Save and continue editing",
    "Save",
    "Delete",
    "Cancel",
    "Submit",
    "Home",
    "Model name",
    "Access attempts",
)

ADMIN_PAGES = {
    "index": "/admin/",
    "order changelist": "/admin/orders/order/",
    "order change page": "/admin/orders/order/{order}/change/",
    "order cancel form": "/admin/orders/order/{pending}/transition/cancel/",
    "shipment changelist": "/admin/fulfillment/shipment/",
    "after-sales changelist": "/admin/aftersales/aftersale/",
    "reminder report": "/admin/reminders/report/",
    "statement upload": "/admin/payments/statementimport/upload/",
    "after-sales change page": "/admin/aftersales/aftersale/{aftersale}/change/",
    "after-sales report": "/admin/aftersales/report/",
    "shipment change page": "/admin/fulfillment/shipment/{shipment}/change/",
    "pick list": "/admin/fulfillment/pickwave/{wave}/pick-list/",
    "scan page": "/admin/fulfillment/shipment/{picking}/scan/",
    "dashboard": "/admin/dashboard/",
}


# --- the pages -------------------------------------------------------------------------


@pytest.fixture
def superuser_client(client, db):
    user = User.objects.create_superuser("boss", password="pw-12345678", email="boss@example.com")
    force_login_verified(client, user)
    return client


@pytest.fixture
def shirt(stocked, hangzhou):  # noqa: F811 (hangzhou is the imported fixture)
    return stocked({hangzhou: 10}, code="TSHIRT-L", name="纯棉T恤", spec="L码 黑色")


@pytest.fixture
def pending_order(shirt) -> Order:
    return order_for([(shirt, 1)], mobile="13900139000")


@pytest.fixture
def shipped_order(shirt, pending_order) -> Order:
    """An order with a parcel, shipped and then asked about (an after-sales request), so its page
    shows lines, payment, parcels and a timeline with several kinds of events."""
    order = paid(order_for([(shirt, 2)]))
    order = ship_whole_order(order, actor=SYSTEM)
    aftersale_create(
        order=order,
        actor=SYSTEM,
        type="return_refund",
        reason="quality_issue",
        lines=[{"sku": shirt.code, "quantity": 1}],
        description="领口开线",
    )
    order.refresh_from_db()
    return order


@pytest.fixture
def more_pages(shirt, shipped_order) -> None:
    """What the other pages show: an after-sales request on a delivered order, a parcel being
    picked in a wave (its pick list and its scan page)."""
    aftersale_create(
        order=delivered_order([(shirt, 1)]),
        actor=SYSTEM,
        type="return_refund",
        reason="size_unfit",
        lines=[{"sku": shirt.code, "quantity": 1}],
        description="尺码偏小",
    )
    (parcel,) = allocated(order_for([(shirt, 1)]))
    pick_wave_start(warehouse=parcel.warehouse, shipments=[parcel], actor=SYSTEM)


def data_values() -> list[str]:
    """What the test created: shown on the pages as data, in whatever language it was typed."""
    values = ["领口开线", "尺码偏小"]
    for order in Order.objects.all():
        values += [order.customer_name, order.receiver, order.storefront.name, order.province, order.city]
        values += [order.district, order.address_detail, mask_address(order.address_detail), order.remark]
        values += [text for line in order.lines.all() for text in (line.name, line.spec)]
    values += [storefront.name for storefront in Storefront.objects.all()]  # 手动录入, the manual orders' shop
    values += [warehouse.name for warehouse in Warehouse.objects.all()]
    values += [name for _, name in settings.LANGUAGES]  # the switch names each language in itself
    values += ["渠道交易号,商户订单号,金额,类型,时间"]  # the channels' statement header, shown as it is
    return [str(value) for value in values if value]


def fetch(client, name: str, order: Order, **headers):
    pending = Order.objects.exclude(pk=order.pk).get(status="pending_payment")
    ids = {
        "order": order.pk,
        "pending": pending.pk,
        "aftersale": Aftersale.objects.latest("pk").pk,
        "shipment": Shipment.objects.filter(lines__order_id=order.pk).first().pk,
        "wave": PickWave.objects.get().pk,
        "picking": Shipment.objects.get(status="picking").pk,
    }
    url = ADMIN_PAGES[name].format(**ids)
    return url, client.get(url, headers=headers)


@pytest.mark.parametrize("page", list(ADMIN_PAGES))
@pytest.mark.usefixtures("more_pages")
def test_the_english_admin_shows_no_chinese_of_ours(superuser_client, shipped_order, page):
    url, response = fetch(superuser_client, page, shipped_order, accept_language="en-US,en;q=0.9")
    assert response.status_code == 200, url
    html = response.content.decode()
    assert '<html lang="en"' in html
    assert untranslated_cjk(html, allow=data_values()) == [], f"Chinese left on {url}"


@pytest.mark.parametrize("page", list(ADMIN_PAGES))
@pytest.mark.usefixtures("more_pages")
def test_the_chinese_admin_is_the_default_and_has_no_english_leftovers(superuser_client, shipped_order, page):
    url, response = fetch(superuser_client, page, shipped_order)  # no Accept-Language at all
    assert response.status_code == 200, url
    html = response.content.decode()
    assert '<html lang="zh-hans"' in html
    assert english_leftovers(html, ENGLISH_UI_WORDS) == [], f"English left on {url}"


@pytest.mark.usefixtures("more_pages")
def test_the_workbench_of_a_role_in_both_languages(client, shipped_order):
    """The home page as 客服 sees it: the queues with their counts and countdowns."""
    agent = User.objects.create_user("kefu", password="pw-12345678", is_staff=True)
    agent.groups.add(Group.objects.get(name="客服"))
    force_login_verified(client, agent)
    english = client.get("/admin/", headers={"accept-language": "en"}).content.decode()
    assert 'id="workbench"' in english and 'data-queue="aftersales"' in english
    assert untranslated_cjk(english, allow=data_values()) == []
    chinese = client.get("/admin/").content.decode()
    assert 'id="workbench"' in chinese and english_leftovers(chinese, ENGLISH_UI_WORDS) == []


@pytest.mark.parametrize("accept_language", ["", "fr-FR,fr;q=0.9", "zh-CN,zh;q=0.9,en;q=0.8", "zh-TW", "ja"])
def test_chinese_unless_the_browser_prefers_english(superuser_client, accept_language):
    response = superuser_client.get("/admin/", headers={"accept-language": accept_language})
    assert response.status_code == 200
    assert '<html lang="zh-hans"' in response.content.decode()
    assert response["Content-Language"] == "zh-hans"


def test_the_header_switch_sets_the_language_for_later_pages(superuser_client):
    page = superuser_client.get("/admin/").content.decode()
    assert 'action="/i18n/setlang/"' in page
    assert 'value="en" lang="en">English</button>' in page  # each language is named in itself

    response = superuser_client.post("/i18n/setlang/", {"language": "en", "next": "/admin/orders/order/"})
    assert response.status_code == 302 and response["Location"] == "/admin/orders/order/"
    english = superuser_client.get("/admin/orders/order/").content.decode()  # no Accept-Language
    assert '<html lang="en"' in english and "Pending payment" in english
    assert 'value="zh-hans" lang="zh-hans">简体中文</button>' in english  # ... and the way back

    superuser_client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/admin/"})
    assert '<html lang="zh-hans"' in superuser_client.get("/admin/").content.decode()


def test_the_pay_page_follows_the_customers_browser(client, shipped_order):
    url = f"/payments/pay/{shipped_order.order_no}/"
    english = client.get(url, headers={"accept-language": "en"}).content.decode()
    assert '<html lang="en">' in english and "Order payment" in english
    assert untranslated_cjk(english, allow=data_values()) == []
    chinese = client.get(url).content.decode()
    assert '<html lang="zh-hans">' in chinese and "订单支付" in chinese


# --- the helpers themselves ------------------------------------------------------------------


def test_untranslated_cjk_reports_ui_text_but_not_allowed_data():
    html = """<html><head><title>订单</title><style>.x{content:"样式"}</style></head>
      <body><h1>Orders</h1><td>张小姐</td><td>Customer 张小姐</td><input type="submit" value="保存">
      <a title="查看">View</a><script>var s = "脚本";</script><p>¥180.00，已付</p></body></html>"""
    assert untranslated_cjk(html, allow=["张小姐"]) == ["订单", "保存", "查看", "¥180.00，已付"]


def test_english_leftovers_matches_whole_words_only():
    html = "<p>应用</p><button>Apply</button><p>Applying</p><td>None</td><td>NoneType</td>"
    assert english_leftovers(html, ["Apply", "None"]) == ["Apply", "None"]


# --- the catalogue ------------------------------------------------------------------------------


def po_entries(path: Path) -> list[dict[str, str]]:
    """The entries of a .po file: msgctxt, msgid, msgid_plural, msgstr / msgstr[n], and `fuzzy`
    (a guess msgmerge made, which msgfmt leaves out of the .mo). Obsolete (#~) entries are skipped."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith("#,") and "fuzzy" in line:
                entry["fuzzy"] = "yes"
            elif line.startswith("#"):
                continue
            elif line.startswith('"') and key:
                entry[key] += ast.literal_eval(line)
            else:
                key, _, literal = line.partition(" ")
                entry[key] = ast.literal_eval(literal)
        if entry.get("msgid"):
            entries.append(entry)
    return entries


def untranslated_msgids(path: Path = PO_FILE) -> list[str]:
    missing = []
    for entry in po_entries(path):
        strings = [value for key, value in entry.items() if key.startswith("msgstr")]
        if entry.get("fuzzy") or not all(strings):
            label = f"[{entry['msgctxt']}] " if "msgctxt" in entry else ""
            missing.append(label + entry["msgid"] + ("  (fuzzy)" if entry.get("fuzzy") else ""))
    return missing


def test_every_msgid_has_an_english_translation():
    missing = untranslated_msgids()
    assert not missing, (
        f"{len(missing)} strings have no English in {PO_FILE.relative_to(settings.BASE_DIR)} "
        "(run `make messages`, translate them, see docs/i18n.md):\n  " + "\n  ".join(missing)
    )


GETTEXT_CALLS = {"_", "gettext", "gettext_lazy", "gettext_noop", "ngettext", "ngettext_lazy"}
PGETTEXT_CALLS = {"pgettext", "pgettext_lazy", "npgettext", "npgettext_lazy"}
TRANSLATE_TAG = re.compile(r"""{%\s*(?:translate|trans)\s+(?:"([^"]+)"|'([^']+)')""")
NOT_SOURCE = {".venv", "tests", "bench", "var", "staticfiles", "migrations", "locale", "node_modules"}


def source_msgids() -> set[str]:
    """The msgids makemessages would find in gettext calls with a literal and in {% translate %}
    tags ({% blocktranslate %} is left to makemessages): "context|msgid" for pgettext."""
    found: set[str] = set()
    root = Path(settings.BASE_DIR)
    for path in root.rglob("*.py"):
        if NOT_SOURCE & set(path.relative_to(root).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            literals = [arg.value if isinstance(arg, ast.Constant) else None for arg in node.args[:2]]
            if name in GETTEXT_CALLS and literals[:1] and isinstance(literals[0], str):
                found.add(literals[0])
            elif name in PGETTEXT_CALLS and len(literals) == 2 and all(isinstance(v, str) for v in literals):
                found.add(f"{literals[0]}|{literals[1]}")
    for path in root.rglob("*.html"):
        if NOT_SOURCE & set(path.relative_to(root).parts):
            continue
        for double, single in TRANSLATE_TAG.findall(path.read_text(encoding="utf-8")):
            found.add(double or single)
    return {msgid for msgid in found if CJK.search(msgid)}  # English msgids are Django's own


def test_every_chinese_string_in_the_code_is_in_the_catalogue():
    """Catches strings a merge brought in before anyone ran `make messages`."""
    catalogue = {(f"{e['msgctxt']}|" if "msgctxt" in e else "") + e["msgid"] for e in po_entries(PO_FILE)}
    missing = sorted(source_msgids() - catalogue)
    assert not missing, (
        f"{len(missing)} strings of the code are not in {PO_FILE.relative_to(settings.BASE_DIR)}: run "
        "`make messages` and translate them (docs/i18n.md):\n  " + "\n  ".join(missing)
    )


def test_the_compiled_catalogue_matches_the_po_file():
    with MO_FILE.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = []
    for entry in po_entries(PO_FILE):
        if entry.get("fuzzy") or "msgid_plural" in entry or not entry.get("msgstr"):
            continue
        if "msgctxt" in entry:
            got = compiled.pgettext(entry["msgctxt"], entry["msgid"])
        else:
            got = compiled.gettext(entry["msgid"])
        if got != entry["msgstr"]:
            stale.append(entry["msgid"])
    assert not stale, f"{MO_FILE.name} is older than the .po: run `make messages` (it compiles). {stale[:10]}"
