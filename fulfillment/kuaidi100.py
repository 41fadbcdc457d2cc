"""The Kuaidi100 (快递100) protocol, and nothing else: signing and verifying pushes, reading a
push's `param`, and the subscribe request to the poll API. No database, no models' state.

Facts from Kuaidi100's subscription API documentation (推送 / 订阅接口):
- A push is a form POST with `param` (JSON) and `sign` = uppercase hex MD5 of `param + salt`,
  where `salt` is the one we sent when subscribing (KUAIDI100_SALT).
- `param.status` is polling / shutdown / abort / updateall; `lastResult` holds `state`,
  `ischeck`, `com`, `nu` and `data[]` (newest first, times in China time, "YYYY-MM-DD HH:MM:SS").
- A subscribe is a form POST of `schema=json` and `param={"company", "number", "key",
  "parameters": {"callbackurl", "salt", "resultv2", ...}}`; the answer is JSON with `result`
  and `returnCode`: 200 accepted, 501 already subscribed (also fine), anything else failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import requests

from .models import TrackingState

PUSH_PATH = "/fulfillment/tracking/kuaidi100/"
CHINA = ZoneInfo("Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# lastResult.state -> our normalised state.
STATE_CODES: dict[str, str] = {
    "0": TrackingState.IN_TRANSIT,
    "1": TrackingState.PICKED_UP,
    "2": TrackingState.PROBLEM,
    "3": TrackingState.DELIVERED,
    "4": TrackingState.RETURNED_SIGNED,
    "5": TrackingState.OUT_FOR_DELIVERY,
    "6": TrackingState.RETURNING,
    "7": TrackingState.TRANSFERRED,
    "14": TrackingState.REFUSED,
}
CODE_OF_STATE = {state: code for code, state in STATE_CODES.items()}
# data[].status (resultv2=1) carries the same states as Chinese words.
STATE_WORDS: dict[str, str] = {str(TrackingState(state).label): state for state in STATE_CODES.values()}
WORD_OF_STATE = {state: word for word, state in STATE_WORDS.items()}

ACK = {"result": True, "returnCode": "200", "message": "成功"}


class PushInvalid(Exception):
    """A push we cannot read (bad JSON, no lastResult.nu). `message` goes back to Kuaidi100."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def sign(param: str, salt: str) -> str:
    return hashlib.md5((param + salt).encode("utf-8")).hexdigest().upper()


def sign_valid(*, param: str, sign_value: str, salt: str) -> bool:
    """Constant-time check. An empty salt never verifies: an unconfigured site accepts nothing."""
    if not salt or not sign_value:
        return False
    return hmac.compare_digest(sign(param, salt), sign_value.strip().upper())


def error_body(message: str) -> dict:
    return {"result": False, "returnCode": "500", "message": message}


def parse_time(text: str) -> datetime:
    return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=CHINA)


def format_time(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime(TIME_FORMAT)


@dataclass(frozen=True)
class Scan:
    """One line of lastResult.data."""

    time: datetime
    context: str
    state: str  # a TrackingState value, or "" when the word is unknown
    area: str


@dataclass(frozen=True)
class Push:
    status: str
    message: str
    com: str
    nu: str
    state: str  # a TrackingState value, or "" for a code we do not know
    state_code: str
    is_check: bool
    scans: list[Scan] = field(default_factory=list)
    auto_check: bool = False
    com_old: str = ""
    com_new: str = ""

    @property
    def newest_scan_at(self) -> datetime | None:
        return max((scan.time for scan in self.scans), default=None)

    @property
    def carriers(self) -> list[str]:
        """Every carrier code this push may have been subscribed under, most likely first."""
        return list(dict.fromkeys(c for c in (self.com, self.com_old, self.com_new) if c))


def parse_push(param: str) -> Push:
    try:
        body = json.loads(param)
    except ValueError as error:
        raise PushInvalid(f"param is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise PushInvalid("param is not a JSON object")
    last = body.get("lastResult") or {}
    if not isinstance(last, dict):
        raise PushInvalid("lastResult is not an object")
    nu = str(last.get("nu") or "").strip().upper()
    if not nu:
        raise PushInvalid("lastResult.nu is missing")
    scans = []
    for item in last.get("data") or []:
        if not isinstance(item, dict):
            raise PushInvalid("lastResult.data[] holds a non-object")
        try:
            moment = parse_time(str(item.get("ftime") or item.get("time") or ""))
        except ValueError:
            raise PushInvalid(f"lastResult.data[].time is not {TIME_FORMAT}: {item.get('time')!r}") from None
        scans.append(
            Scan(
                time=moment,
                context=str(item.get("context") or "")[:500],
                state=STATE_WORDS.get(str(item.get("status") or "").strip(), ""),
                area=str(item.get("areaName") or "")[:100],
            )
        )
    code = str(last.get("state", "")).strip()
    return Push(
        status=str(body.get("status") or "").strip(),
        message=str(body.get("message") or ""),
        com=str(last.get("com") or "").strip(),
        nu=nu,
        state=STATE_CODES.get(code, ""),
        state_code=code,
        is_check=str(last.get("ischeck", "0")) == "1",
        scans=scans,
        auto_check=str(body.get("autoCheck", "0")) == "1",
        com_old=str(body.get("comOld") or "").strip(),
        com_new=str(body.get("comNew") or "").strip(),
    )


# --- subscribe ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscribeAnswer:
    ok: bool
    return_code: str
    message: str


def subscribe_form(
    *, company: str, number: str, key: str, callback_url: str, salt: str, phone: str = ""
) -> dict[str, str]:
    parameters = {"callbackurl": callback_url, "salt": salt, "resultv2": "1"}
    if phone:
        parameters["phone"] = phone  # 顺丰 answers only with the receiver's phone number
    param = {"company": company, "number": number, "key": key, "parameters": parameters}
    return {"schema": "json", "param": json.dumps(param, ensure_ascii=False, separators=(",", ":"))}


def subscribe_post(*, url: str, form: dict[str, str], timeout: float) -> SubscribeAnswer:
    """POST the subscribe form. 200 and 501 (重复订阅, already subscribed) count as subscribed.
    A network error, a non-JSON answer or any other returnCode is a failure to retry later.
    """
    try:
        response = requests.post(url, data=form, timeout=timeout)
        answer = response.json()
    except (requests.RequestException, ValueError) as error:
        return SubscribeAnswer(ok=False, return_code="", message=f"{type(error).__name__}: {error}"[:500])
    if not isinstance(answer, dict):
        return SubscribeAnswer(ok=False, return_code="", message=f"unexpected answer: {answer!r}"[:500])
    code = str(answer.get("returnCode", ""))
    ok = code in ("200", "501")
    return SubscribeAnswer(ok=ok, return_code=code, message=str(answer.get("message", ""))[:500])
