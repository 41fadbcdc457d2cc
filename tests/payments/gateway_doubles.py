"""The gateway's side of the wire, written independently of payments.gateways so the
tests check our verifier against a second implementation: keys generated here, notifies
signed here exactly as Alipay and WeChat Pay document it.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ALIPAY_APP_ID = "2021000000000077"
ALIPAY_SELLER_ID = "2088000000000077"
WECHAT_MCHID = "1900000077"
WECHAT_APPID = "wx0000000000000077"
WECHAT_PUBLIC_KEY_ID = "PUB_KEY_ID_0000000077"


class KeyPair:
    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def private_pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, message: str) -> str:
        signature = self.private.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()


class FakeGateways:
    """Both gateways' key material, and writers of real-format notifies."""

    def __init__(self, directory: Path) -> None:
        self.alipay_platform = KeyPair()
        self.alipay_merchant = KeyPair()
        self.wechat_platform = KeyPair()
        self.wechat_merchant = KeyPair()
        self.apiv3_key = secrets.token_hex(16)  # 32 ASCII characters
        self.dir = directory
        for name in ("alipay_platform", "alipay_merchant", "wechat_platform", "wechat_merchant"):
            pair: KeyPair = getattr(self, name)
            (directory / f"{name}_public.pem").write_bytes(pair.public_pem())
            (directory / f"{name}_private.pem").write_bytes(pair.private_pem())

    def settings(self) -> dict[str, str]:
        d = self.dir
        return {
            "ALIPAY_APP_ID": ALIPAY_APP_ID,
            "ALIPAY_SELLER_ID": ALIPAY_SELLER_ID,
            "ALIPAY_PUBLIC_KEY_PATH": str(d / "alipay_platform_public.pem"),
            "ALIPAY_PRIVATE_KEY_PATH": str(d / "alipay_merchant_private.pem"),
            "ALIPAY_GATEWAY_URL": "http://127.0.0.1:9/gateway.do",
            "WECHATPAY_MCHID": WECHAT_MCHID,
            "WECHATPAY_APPID": WECHAT_APPID,
            "WECHATPAY_APIV3_KEY": self.apiv3_key,
            "WECHATPAY_PUBLIC_KEY_PATH": str(d / "wechat_platform_public.pem"),
            "WECHATPAY_PUBLIC_KEY_ID": WECHAT_PUBLIC_KEY_ID,
            "WECHATPAY_PRIVATE_KEY_PATH": str(d / "wechat_merchant_private.pem"),
            "WECHATPAY_CERT_SERIAL": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            "WECHATPAY_API_BASE": "http://127.0.0.1:9",
        }

    # --- Alipay ---------------------------------------------------------------

    def alipay_notify(self, *, out_trade_no: str, total_amount: str, **overrides: str) -> bytes:
        fields = {
            "notify_time": "2026-11-22 10:00:00",
            "notify_type": "trade_status_sync",
            "notify_id": overrides.pop("notify_id", uuid.uuid4().hex),
            "app_id": ALIPAY_APP_ID,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "trade_no": "2026112222001400000000" + secrets.token_hex(2),
            "out_trade_no": out_trade_no,
            "seller_id": ALIPAY_SELLER_ID,
            "total_amount": total_amount,
            "receipt_amount": total_amount,
            "buyer_pay_amount": total_amount,
            "trade_status": "TRADE_SUCCESS",
            "gmt_create": "2026-11-22 09:59:50",
            "gmt_payment": "2026-11-22 09:59:58",
            "subject": "订单 T恤 L码+黑色 100%纯棉 & 赠品",
            "body": "",
        }
        fields.update(overrides)
        content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in ("sign", "sign_type") and v != "")
        fields["sign"] = self.alipay_platform.sign(content)
        return urlencode(fields).encode()

    # --- WeChat Pay -------------------------------------------------------------

    def wechat_notify(
        self,
        *,
        out_trade_no: str,
        total_fen: int,
        event_type: str = "TRANSACTION.SUCCESS",
        timestamp: int | None = None,
        notification_id: str | None = None,
        **resource_overrides,
    ) -> tuple[bytes, dict[str, str]]:
        resource = {
            "mchid": WECHAT_MCHID,
            "appid": WECHAT_APPID,
            "out_trade_no": out_trade_no,
            "transaction_id": "4200000000" + secrets.token_hex(5),
            "trade_type": "NATIVE",
            "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功",
            "bank_type": "OTHERS",
            "success_time": "2026-11-22T10:00:00+08:00",
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {"total": total_fen, "payer_total": total_fen, "currency": "CNY", "payer_currency": "CNY"},
        }
        resource.update(resource_overrides)
        nonce, associated = secrets.token_hex(6), "transaction"
        ciphertext = AESGCM(self.apiv3_key.encode()).encrypt(
            nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), associated.encode()
        )
        body = json.dumps(
            {
                "id": notification_id or str(uuid.uuid4()),
                "create_time": "2026-11-22T10:00:01+08:00",
                "resource_type": "encrypt-resource",
                "event_type": event_type,
                "summary": "支付成功",
                "resource": {
                    "original_type": "transaction",
                    "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": base64.b64encode(ciphertext).decode(),
                    "associated_data": associated,
                    "nonce": nonce,
                },
            },
            ensure_ascii=False,
        ).encode()
        ts = str(timestamp if timestamp is not None else int(time.time()))
        header_nonce = secrets.token_hex(16)
        signature = self.wechat_platform.sign(f"{ts}\n{header_nonce}\n{body.decode()}\n")
        headers = {
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Nonce": header_nonce,
            "Wechatpay-Signature": signature,
            "Wechatpay-Serial": WECHAT_PUBLIC_KEY_ID,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }
        return body, headers


def yuan_to_fen(amount: str | Decimal) -> int:
    return int(Decimal(amount) * 100)


def http_headers(headers: dict[str, str]) -> dict[str, str]:
    """Django test client spelling of request headers."""
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}


__all__ = ["FakeGateways", "http_headers", "yuan_to_fen"]
