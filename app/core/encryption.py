"""Secrets at rest: what the service must read back in the clear (a webhook's signing secrets, an
A2A push config's credentials) is stored sealed with AES-256-GCM under ``AGENTRUN_ENCRYPTION_KEYS``.

The first key seals, every key opens: a sealed value names the key that sealed it (the first
8 hex digits of the key's SHA-256), so a new key is added, made first, and the old one dropped
once ``agentrun keys rotate`` has sealed every row again, without downtime (docs/security.md).
The column a value belongs to is bound as associated data: a value copied into another column
does not open. Stored as ``v1.<key id>.<base64url of nonce, ciphertext and tag>``.
"""

import base64
import binascii
import hashlib
import secrets
from collections.abc import Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.core.errors import Unavailable

SETTING = "AGENTRUN_ENCRYPTION_KEYS"
VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12


class NoEncryptionKey(Unavailable):
    """A secret was to be sealed or opened and the service has no key for it (503: the
    operator's to fix, not the client's)."""


class BadEncryptionKey(ValueError):
    """A configured key that is not base64 of 32 bytes."""


def new_key() -> str:
    """A fresh key as the setting takes it: URL-safe base64 of 32 random bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def parse_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        raise BadEncryptionKey(f"{SETTING}: a key is not base64.") from None
    if len(key) != KEY_BYTES:
        raise BadEncryptionKey(
            f"{SETTING}: a key must be base64 of {KEY_BYTES} bytes (`agentrun keys generate`)."
        )
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def sealed_key_id(sealed: str) -> str:
    """The id of the key a stored value was sealed with."""
    return sealed.split(".", 2)[1] if sealed.count(".") >= 2 else ""


class Keyring:
    """The service's keys, the sealing one first."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._ciphers = {key_id(key): AESGCM(key) for key in keys}
        self.ids = [key_id(key) for key in keys]

    @property
    def sealing_id(self) -> str | None:
        return self.ids[0] if self.ids else None

    def seal(self, plaintext: str, purpose: str) -> str:
        if self.sealing_id is None:
            raise NoEncryptionKey(
                f"The service has no encryption key ({SETTING}) to store this secret with: "
                "ask its operator to set one."
            )
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[self.sealing_id].encrypt(nonce, plaintext.encode(), purpose.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{VERSION}.{self.sealing_id}.{body}"

    def open(self, sealed: str, purpose: str) -> str:
        version, kid, body = [*sealed.split(".", 2), "", ""][:3]
        cipher = self._ciphers.get(kid)
        if version != VERSION or cipher is None:
            raise NoEncryptionKey(
                f"A stored secret was sealed with key {kid or '?'}, which is not in {SETTING}."
            )
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            plaintext = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise NoEncryptionKey(
                f"A stored secret does not open with key {kid}: altered, or moved from another "
                "column."
            ) from None
        return plaintext.decode()

    def open_optional(self, sealed: str | None, purpose: str) -> str | None:
        return None if sealed is None else self.open(sealed, purpose)


@lru_cache(maxsize=8)
def keyring_of(keys: tuple[str, ...]) -> Keyring:
    """The keyring of the setting's keys (built once per distinct setting)."""
    return Keyring([parse_key(key) for key in keys])
