"""The sandbox carrier (沙箱快递): a stand-in for Kuaidi100 that tracks parcels shipped with
carrier `sandbox` (numbers SB + 10-14 digits), so a newcomer sees parcels move and tests have
a real source of pushes.

It pushes really signed Kuaidi100-format updates (param JSON, sign = MD5(param + KUAIDI100_SALT))
over HTTP to our own push URL (OMS_SITE_URL + /fulfillment/tracking/kuaidi100/), through the same
verification as production, one step every OMS_CARRIER_SANDBOX_STEP_SECONDS, by Celery countdown:
揽收 → 在途 → 在途 → 派件 → 签收. Each push carries every scan so far, newest first, as
Kuaidi100 does.

Faults, chosen by the number's last two digits, or for every parcel by
OMS_CARRIER_SANDBOX_FAULT:
- `…02` / `problem`: 揽收 → 在途 → 疑难 (address unknown), then nothing;
- `…14` / `refused`: … → 派件 → 拒签 → 退回 → 退签 (the parcel comes back to the warehouse);
- `…99` / `stall`: 揽收, then nothing more (the stale-tracking alert's case).

It keeps no state: the script follows from the number, and each task carries the step and the
time the parcel was accepted, so every push of a parcel repeats the same scan times. A lost
Celery message stops that parcel (the sandbox is not worth an outbox).

Off (OMS_CARRIER_SANDBOX_ENABLED false, production's default), a `sandbox` number cannot be
shipped, subscriptions for it are refused and its tasks do nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.utils import timezone

from oms.jobs import enqueue_on_commit

from . import kuaidi100

logger = logging.getLogger(__name__)

PUSH_TASK = "fulfillment.tasks.sandbox_carrier_push"
COM = "sandbox"
DELIVERY_TIMEOUT_SECONDS = 5
MAX_TRIES_PER_STEP = 5
FAULTS = ("", "problem", "refused", "stall")
FAULT_SUFFIXES = {"02": "problem", "14": "refused", "99": "stall"}


@dataclass(frozen=True)
class Step:
    code: str  # Kuaidi100 lastResult.state
    context: str
    area: str


PICKUP = Step("1", "【杭州市】沙箱快递 杭州主仓营业部 已揽收", "浙江省,杭州市")
LEAVE = Step("0", "【杭州市】快件已离开 杭州转运中心，发往 上海转运中心", "浙江省,杭州市")
ARRIVE = Step("0", "【上海市】快件已到达 上海转运中心", "上海,上海市")
OUT = Step("5", "【上海市】快递员 王师傅（13800000000）正在为您派件", "上海,上海市")
SIGNED = Step("3", "【上海市】已签收，签收人：本人。感谢使用沙箱快递", "上海,上海市")
PROBLEM = Step("2", "【上海市】收件地址不详，快件滞留待处理", "上海,上海市")
REFUSED = Step("14", "【上海市】收件人拒收，快件将退回寄件人", "上海,上海市")
RETURNING = Step("6", "【上海市】退回件已发出，发往 杭州转运中心", "上海,上海市")
RETURN_SIGNED = Step("4", "【杭州市】退回件已由寄件人签收", "浙江省,杭州市")

SCRIPTS: dict[str, tuple[Step, ...]] = {
    "": (PICKUP, LEAVE, ARRIVE, OUT, SIGNED),
    "problem": (PICKUP, LEAVE, PROBLEM),
    "refused": (PICKUP, LEAVE, ARRIVE, OUT, REFUSED, RETURNING, RETURN_SIGNED),
    "stall": (PICKUP,),
}


def sandbox_enabled() -> bool:
    return bool(settings.OMS_CARRIER_SANDBOX_ENABLED)


def step_seconds() -> int:
    return int(settings.OMS_CARRIER_SANDBOX_STEP_SECONDS)


def fault_of(tracking_no: str) -> str:
    forced = settings.OMS_CARRIER_SANDBOX_FAULT
    if forced:
        return forced if forced in FAULTS else ""
    return FAULT_SUFFIXES.get(tracking_no[-2:], "")


def script_of(tracking_no: str) -> tuple[Step, ...]:
    return SCRIPTS[fault_of(tracking_no)]


def sandbox_push_build(*, tracking_no: str, step: int, started_at: datetime) -> dict[str, str]:
    """The form Kuaidi100 would POST for this parcel at `step` (0-based): {"param", "sign"}."""
    script = script_of(tracking_no)
    interval = timedelta(seconds=max(step_seconds(), 1))
    done = script[: step + 1]
    data = []
    for index, scan in reversed(list(enumerate(done))):
        moment = kuaidi100.format_time(started_at + interval * (index + 1))
        data.append(
            {
                "time": moment,
                "ftime": moment,
                "context": scan.context,
                "status": kuaidi100.WORD_OF_STATE[kuaidi100.STATE_CODES[scan.code]],
                "areaCode": "",
                "areaName": scan.area,
            }
        )
    last = done[-1]
    final = step + 1 >= len(script) and last.code in ("3", "4")
    param = {
        "status": "shutdown" if final else "polling",
        "billstatus": "got",
        "message": "",
        "autoCheck": "0",
        "comOld": "",
        "comNew": "",
        "lastResult": {
            "message": "ok",
            "nu": tracking_no,
            "ischeck": "1" if final else "0",
            "condition": "F00",
            "com": COM,
            "status": "200",
            "state": last.code,
            "data": data,
        },
    }
    text = json.dumps(param, ensure_ascii=False, separators=(",", ":"))
    return {"param": text, "sign": kuaidi100.sign(text, settings.KUAIDI100_SALT)}


def sandbox_parcel_accept(*, tracking_no: str, now: datetime | None = None) -> None:
    """Take a parcel: its first scan (揽收) is pushed one step from now, after commit."""
    started_at = (now or timezone.now()).replace(microsecond=0)
    enqueue_on_commit(PUSH_TASK, tracking_no, 0, started_at.isoformat(), 1, countdown=step_seconds())


@dataclass(frozen=True)
class NextPush:
    step: int
    tries: int
    countdown: int


def sandbox_push_deliver(*, tracking_no: str, step: int, started_at: datetime, tries: int = 1) -> NextPush | None:
    """POST one step's push to our push URL. Returns what to push next (the next step, or this
    one again after a failed delivery, up to MAX_TRIES_PER_STEP), or None when the script ended.
    """
    form = sandbox_push_build(tracking_no=tracking_no, step=step, started_at=started_at)
    url = settings.OMS_SITE_URL.rstrip("/") + kuaidi100.PUSH_PATH
    try:
        response = requests.post(url, data=form, timeout=DELIVERY_TIMEOUT_SECONDS)
        delivered = response.status_code == 200 and response.json().get("result") is True
    except (requests.RequestException, ValueError) as error:
        logger.warning("sandbox carrier push %s step %d to %s failed: %s", tracking_no, step, url, error)
        delivered = False
    if not delivered:
        return NextPush(step=step, tries=tries + 1, countdown=step_seconds()) if tries < MAX_TRIES_PER_STEP else None
    if step + 1 >= len(script_of(tracking_no)):
        return None
    return NextPush(step=step + 1, tries=1, countdown=step_seconds())
