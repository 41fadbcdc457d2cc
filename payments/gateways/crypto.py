"""The few cryptographic primitives the gateways need, on top of `cryptography`.

- SHA256withRSA (RSASSA-PKCS1-v1_5) with base64 signatures: Alipay RSA2 and WeChat Pay
  WECHATPAY2-SHA256-RSA2048 both use it, for our requests and for their answers and notifies.
- AES-256-GCM: WeChat Pay encrypts a notify's `resource` with the merchant's APIv3 key.

Keys arrive in whatever form the gateway consoles hand out: PEM with PKCS#8 or PKCS#1
armour, or (Alipay) the bare base64 body of the DER with no armour at all. Loaded keys
are cached by their text, so adapters can keep PEM strings in frozen configs cheaply.
"""

from __future__ import annotations

import base64
import binascii
import functools
import secrets
import string

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PrivateKeyLike = str | bytes | rsa.RSAPrivateKey
PublicKeyLike = str | bytes | rsa.RSAPublicKey

_NONCE_ALPHABET = string.ascii_letters + string.digits


class CryptoError(ValueError):
    """A key, signature or ciphertext that cannot be used. `reason` is short and loggable."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _as_text(key: str | bytes) -> str:
    return key.decode("ascii") if isinstance(key, bytes) else key


def _bare_der(text: str) -> bytes:
    """The DER inside a key given as bare base64 (no `-----BEGIN` line), as Alipay's console shows it."""
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("key is neither PEM nor base64") from exc


@functools.lru_cache(maxsize=64)
def _load_private_key_text(text: str) -> rsa.RSAPrivateKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            # load_der_private_key reads both PKCS#8 and PKCS#1 (traditional) DER.
            key = serialization.load_der_private_key(_bare_der(text), password=None)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, CryptoError):
            raise
        raise CryptoError("unreadable private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError("private key is not RSA")
    return key


@functools.lru_cache(maxsize=64)
def _load_public_key_text(text: str) -> rsa.RSAPublicKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            # SubjectPublicKeyInfo DER (what Alipay calls the "支付宝公钥"), or PKCS#1 RSAPublicKey.
            key = serialization.load_der_public_key(_bare_der(text))
    except (ValueError, TypeError) as exc:
        if isinstance(exc, CryptoError):
            raise
        raise CryptoError("unreadable public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise CryptoError("public key is not RSA")
    return key


def load_private_key(key: PrivateKeyLike) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1) or bare base64 DER. Raises CryptoError."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key
    return _load_private_key_text(_as_text(key))


def load_public_key(key: PublicKeyLike) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (SubjectPublicKeyInfo or PKCS#1) or bare base64 DER. Raises CryptoError."""
    if isinstance(key, rsa.RSAPublicKey):
        return key
    return _load_public_key_text(_as_text(key))


def public_key_pem(key: PrivateKeyLike | PublicKeyLike) -> str:
    """The SubjectPublicKeyInfo PEM of a key pair (given its private key) or of a public key."""
    loaded: rsa.RSAPrivateKey | rsa.RSAPublicKey
    if isinstance(key, (str, bytes)):
        text = _as_text(key)
        if "PUBLIC KEY" in text:
            loaded = _load_public_key_text(text)
        else:
            try:
                loaded = _load_private_key_text(text)
            except CryptoError:
                loaded = _load_public_key_text(text)
    else:
        loaded = key
    public = loaded.public_key() if isinstance(loaded, rsa.RSAPrivateKey) else loaded
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def _as_bytes(message: str | bytes) -> bytes:
    return message.encode("utf-8") if isinstance(message, str) else message


def rsa_sign(private_key: PrivateKeyLike, message: str | bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5) over the UTF-8 bytes of `message`, base64-encoded."""
    signature = load_private_key(private_key).sign(_as_bytes(message), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa_verify(public_key: PublicKeyLike, message: str | bytes, signature_b64: str) -> None:
    """Check a base64 SHA256withRSA signature. Raises CryptoError("bad base64" / "bad signature")."""
    try:
        signature = base64.b64decode("".join(signature_b64.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("bad base64") from exc
    if not signature:
        raise CryptoError("bad base64")
    try:
        load_public_key(public_key).verify(signature, _as_bytes(message), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise CryptoError("bad signature") from exc


def _aes_key(key: str | bytes) -> AESGCM:
    raw = _as_bytes(key)
    if len(raw) != 32:
        raise CryptoError("AES-256 key must be 32 bytes")
    return AESGCM(raw)


def aes_gcm_encrypt(key: str | bytes, nonce: str | bytes, plaintext: str | bytes, associated_data: str | bytes) -> str:
    """AES-256-GCM; returns base64(ciphertext || 16-byte tag), the layout WeChat Pay uses."""
    sealed = _aes_key(key).encrypt(_as_bytes(nonce), _as_bytes(plaintext), _as_bytes(associated_data))
    return base64.b64encode(sealed).decode("ascii")


def aes_gcm_decrypt(key: str | bytes, nonce: str | bytes, ciphertext_b64: str, associated_data: str | bytes) -> bytes:
    """Open base64(ciphertext || tag). Raises CryptoError on bad base64, a bad nonce, or a failed tag."""
    try:
        sealed = base64.b64decode(ciphertext_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("bad base64") from exc
    try:
        return _aes_key(key).decrypt(_as_bytes(nonce), sealed, _as_bytes(associated_data))
    except InvalidTag as exc:
        raise CryptoError("decryption failed") from exc
    except ValueError as exc:  # empty nonce, too short for a tag, ...
        raise CryptoError("decryption failed") from exc


def generate_rsa_keypair(bits: int = 2048) -> tuple[str, str]:
    """A fresh key pair as (PKCS#8 private PEM, SubjectPublicKeyInfo public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return private_pem, public_key_pem(key)


def random_nonce(length: int = 32) -> str:
    """A random alphanumeric string, for WeChat Pay nonce_str and GCM nonces (12 chars there)."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))
