"""Key material of the built-in sandbox gateway, made on first use and kept in SANDBOX_KEY_DIR.

The sandbox plays both sides of each gateway, so it owns:

- the "Alipay platform" key pair (signs notifies and answers) and our Alipay *app* key pair
  (our adapter signs requests with the private half; the sandbox checks them with the public one);
- the "WeChat Pay platform" key pair with its public key id, the APIv3 key, and our WeChat Pay
  *merchant* key pair with its certificate serial.

Everything lives in one JSON file written atomically with a hard link, so when two processes
(web and worker) start at once exactly one set of keys wins and both read that one. Loaded
material is cached per directory (and file identity), so a test that points SANDBOX_KEY_DIR at
its own tmp_path gets its own keys.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import string
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings

from payments.gateways.alipay import AlipayConfig
from payments.gateways.crypto import generate_rsa_keypair
from payments.gateways.wechatpay import WechatPayConfig

ALIPAY_APP_ID = "9021000000000001"
ALIPAY_SELLER_ID = "2088000000000001"
WECHATPAY_MCHID = "1900000001"
WECHATPAY_APPID = "wxsandbox0000001"
KEY_FILE_NAME = "sandbox-keys.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SandboxKeys:
    """Everything secret the sandbox knows. Private halves are kept out of repr()."""

    alipay_platform_private_pem: str = field(repr=False)
    alipay_platform_public_pem: str
    alipay_app_private_pem: str = field(repr=False)
    alipay_app_public_pem: str
    wechatpay_platform_private_pem: str = field(repr=False)
    wechatpay_platform_public_pem: str
    wechatpay_public_key_id: str
    wechatpay_apiv3_key: str = field(repr=False)
    wechatpay_merchant_private_pem: str = field(repr=False)
    wechatpay_merchant_public_pem: str
    wechatpay_merchant_cert_serial: str
    version: int = FORMAT_VERSION


_cache: dict[tuple[str, int, int], SandboxKeys] = {}
_lock = threading.Lock()


def _generate() -> SandboxKeys:
    alipay_platform = generate_rsa_keypair()
    alipay_app = generate_rsa_keypair()
    wechatpay_platform = generate_rsa_keypair()
    wechatpay_merchant = generate_rsa_keypair()
    alphabet = string.ascii_letters + string.digits
    return SandboxKeys(
        alipay_platform_private_pem=alipay_platform[0],
        alipay_platform_public_pem=alipay_platform[1],
        alipay_app_private_pem=alipay_app[0],
        alipay_app_public_pem=alipay_app[1],
        wechatpay_platform_private_pem=wechatpay_platform[0],
        wechatpay_platform_public_pem=wechatpay_platform[1],
        wechatpay_public_key_id="PUB_KEY_ID_SANDBOX" + secrets.token_hex(8).upper(),
        wechatpay_apiv3_key="".join(secrets.choice(alphabet) for _ in range(32)),
        wechatpay_merchant_private_pem=wechatpay_merchant[0],
        wechatpay_merchant_public_pem=wechatpay_merchant[1],
        wechatpay_merchant_cert_serial=secrets.token_hex(20).upper(),
    )


def _write_once(path: Path, material: SandboxKeys) -> None:
    """Publish `material` at `path` unless someone already did; never leaves a half-written file."""
    descriptor, temp_name = tempfile.mkstemp(prefix=".sandbox-keys-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(material), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp_name, path)  # atomic, and fails if another process published first
        except FileExistsError:
            pass
        except OSError:
            # A filesystem without hard links: fall back to create-exclusive rename semantics.
            if not path.exists():
                os.replace(temp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)


def _read(path: Path) -> SandboxKeys:
    with path.open(encoding="utf-8") as handle:
        stored = json.load(handle)
    return SandboxKeys(**stored)


def sandbox_keys(key_dir: str | os.PathLike[str] | None = None) -> SandboxKeys:
    """The sandbox key material for `key_dir` (default settings.SANDBOX_KEY_DIR), creating it once."""
    directory = Path(key_dir if key_dir is not None else settings.SANDBOX_KEY_DIR).resolve()
    path = directory / KEY_FILE_NAME
    with _lock:
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            _write_once(path, _generate())
        stat = path.stat()
        cache_key = (str(path), stat.st_ino, stat.st_mtime_ns)
        if cache_key not in _cache:
            _cache[cache_key] = _read(path)
        return _cache[cache_key]


def alipay_merchant_config(*, gateway_url: str, notify_url: str, key_dir: str | None = None) -> AlipayConfig:
    """Our side of the sandbox Alipay: our app key to sign, the sandbox platform key to verify."""
    material = sandbox_keys(key_dir)
    return AlipayConfig(
        app_id=ALIPAY_APP_ID,
        seller_id=ALIPAY_SELLER_ID,
        gateway_url=gateway_url,
        alipay_public_key_pem=material.alipay_platform_public_pem,
        merchant_private_key_pem=material.alipay_app_private_pem,
        notify_url=notify_url,
    )


def wechatpay_merchant_config(*, api_base: str, notify_url: str, key_dir: str | None = None) -> WechatPayConfig:
    """Our side of the sandbox WeChat Pay: merchant key and serial, platform public key and its id."""
    material = sandbox_keys(key_dir)
    return WechatPayConfig(
        mchid=WECHATPAY_MCHID,
        appid=WECHATPAY_APPID,
        apiv3_key=material.wechatpay_apiv3_key,
        platform_public_key_pem=material.wechatpay_platform_public_pem,
        platform_public_key_id=material.wechatpay_public_key_id,
        merchant_private_key_pem=material.wechatpay_merchant_private_pem,
        merchant_cert_serial=material.wechatpay_merchant_cert_serial,
        api_base=api_base,
        notify_url=notify_url,
    )
