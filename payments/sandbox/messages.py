"""Wire formats the sandbox speaks as the gateway: notify bodies, signed answers, ids.

Pure functions over key material and plain values; the services decide when to call them.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.parse
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from payments.gateways.alipay import alipay_signing_string, alipay_time
from payments.gateways.crypto import aes_gcm_encrypt, random_nonce, rsa_sign
from payments.gateways.wechatpay import SIGNATURE_TYPE, rfc3339, signing_message

from .keys import SandboxKeys

ALIPAY_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
SANDBOX_BUYER_ID = "2088000000000009"
SANDBOX_BUYER_LOGON_ID = "san***@sandbox.com"
SANDBOX_OPENID = "oSandboxBuyer000000000000001"


def new_trade_no(channel: str, now: datetime) -> str:
    """28 digits like the real ones: Alipay `<date>2200...`, WeChat Pay `4200...<date>...`."""
    day = now.strftime("%Y%m%d")
    if channel == "alipay":
        return f"{day}2200{secrets.randbelow(10**16):016d}"
    return f"4200{secrets.randbelow(10**6):06d}{day}{secrets.randbelow(10**10):010d}"


def new_refund_no(now: datetime) -> str:
    """A WeChat Pay style refund_id (Alipay refunds are named by the trade_no instead)."""
    return f"5030{secrets.randbelow(10**7):07d}{now.strftime('%Y%m%d')}{secrets.randbelow(10**10):010d}"


def new_notify_id() -> str:
    return uuid.uuid4().hex


def corrupt_signature(signature_b64: str) -> str:
    """Still valid base64 of the right length, but no longer a valid signature."""
    raw = bytearray(base64.b64decode(signature_b64))
    raw[len(raw) // 2] ^= 0x5A
    return base64.b64encode(bytes(raw)).decode("ascii")


def yuan(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):.2f}"


def fen(amount: Decimal) -> int:
    return int(amount.quantize(Decimal("0.01")) * 100)


# --- Alipay -------------------------------------------------------------------------


def alipay_sign_fields(fields: Mapping[str, str], keys: SandboxKeys) -> dict[str, str]:
    """A notify's fields plus `sign_type=RSA2` and the platform `sign` (sign_type not signed)."""
    signed = {**fields, "sign_type": "RSA2"}
    signed["sign"] = rsa_sign(keys.alipay_platform_private_pem, alipay_signing_string(signed))
    return signed


def alipay_form(fields: Mapping[str, str]) -> str:
    """Form-encode as a real HTTP client would (UTF-8, `+` for spaces, everything else escaped)."""
    return urllib.parse.urlencode(list(fields.items()))


def alipay_answer_text(method: str, node: Mapping[str, Any], keys: SandboxKeys) -> str:
    """`{"<method>_response": {...}, "sign": "..."}` with the signature over the node's exact text."""
    node_name = method.replace(".", "_") + "_response"
    node_text = json.dumps(dict(node), ensure_ascii=False, separators=(",", ":"))
    sign = rsa_sign(keys.alipay_platform_private_pem, node_text)
    return "{" + json.dumps(node_name) + ":" + node_text + "," + json.dumps("sign") + ":" + json.dumps(sign) + "}"


def alipay_business_error(sub_code: str, sub_msg: str) -> dict[str, str]:
    return {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}


def alipay_invalid_arguments(sub_code: str, sub_msg: str) -> dict[str, str]:
    return {"code": "40002", "msg": "Invalid Arguments", "sub_code": sub_code, "sub_msg": sub_msg}


# --- WeChat Pay ---------------------------------------------------------------------


def wechatpay_envelope(
    *,
    keys: SandboxKeys,
    notification_id: str,
    event_type: str,
    summary: str,
    original_type: str,
    payload: Mapping[str, Any],
    now: datetime,
) -> str:
    """A v3 notification body whose `resource` is the payload sealed with the APIv3 key."""
    nonce = random_nonce(12)
    plaintext = json.dumps(dict(payload), ensure_ascii=False, separators=(",", ":"))
    envelope = {
        "id": notification_id,
        "create_time": rfc3339(now),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": aes_gcm_encrypt(keys.wechatpay_apiv3_key, nonce, plaintext, original_type),
            "associated_data": original_type,
            "nonce": nonce,
        },
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))


def wechatpay_platform_headers(
    *, keys: SandboxKeys, body: str | bytes, now: datetime, corrupt: bool = False
) -> dict[str, str]:
    """The Wechatpay-* headers the platform puts on its answers and notifies."""
    timestamp = str(int(now.timestamp()))
    nonce = random_nonce(32)
    signature = rsa_sign(keys.wechatpay_platform_private_pem, signing_message(timestamp, nonce, body))
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": corrupt_signature(signature) if corrupt else signature,
        "Wechatpay-Serial": keys.wechatpay_public_key_id,
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }


def alipay_time_or_empty(moment: datetime | None) -> str:
    return alipay_time(moment) if moment else ""
