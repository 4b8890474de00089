"""Sealed values: a str encrypted with AES-GCM under a subject's key, and back.

A sealed value is the one-entry dict ``{"$pii": "<key id>.<base64url(nonce +
ciphertext)>"}``. The event id and the value's path in the data are
authenticated with it, so a sealed value copied into another event or field
does not open. :mod:`evsrc.shredding` seals and opens personal fields with
these functions; they are public for tools that inspect stored data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Final

from evsrc.errors import ConfigurationError

__all__ = [
    "ENVELOPE_KEY",
    "REDACTED_PREFIX",
    "envelope_of",
    "invalid_tag",
    "redacted",
    "require_cipher",
    "seal",
    "unseal",
]

#: The key of the one-entry dict that replaces a personal value at rest.
ENVELOPE_KEY: Final = "$pii"
#: What a forgotten personal value decodes to starts with this.
REDACTED_PREFIX: Final = "[forgotten:"
_NONCE_BYTES: Final = 12


def require_cipher() -> Any:
    """The AES-GCM class; ``ConfigurationError`` if the ``cryptography`` package is missing."""
    # Imported on first use, so that models marking fields need no cryptography package.
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - the crypto extra is missing
        msg = "encrypting personal fields needs cryptography: pip install 'evsrc[crypto]'"
        raise ConfigurationError(msg) from exc
    return AESGCM


_CIPHERS: dict[bytes, Any] = {}
_MAX_CIPHERS: Final = 1024


def _cipher(key: bytes) -> Any:
    # An AES-GCM object expands its key once; keep a bounded number of them.
    cipher = _CIPHERS.get(key)
    if cipher is None:
        if len(_CIPHERS) >= _MAX_CIPHERS:
            _CIPHERS.clear()
        cipher = _CIPHERS[key] = require_cipher()(key)
    return cipher


def invalid_tag() -> type[Exception]:
    """The exception AES-GCM raises for altered data."""
    from cryptography.exceptions import InvalidTag

    return InvalidTag


def redacted(key_id: str) -> str:
    """What a personal value encrypted with the forgotten key ``key_id`` decodes to."""
    return f"{REDACTED_PREFIX}{key_id[:8]}]"


def _associated(event_id: bytes, field: str) -> bytes:
    # Length-prefixed, so that no two (field, plaintext) pairs give the same nonce input.
    name = field.encode()
    return event_id + len(name).to_bytes(4, "big") + name


def seal(key_id: str, key: bytes, event_id: bytes, field: str, plaintext: str) -> dict[str, str]:
    """The envelope of ``plaintext``: deterministic for the same key, event, field and text.

    The nonce is an HMAC of the event id, field and plaintext under the key,
    so a re-sent append encrypts to the same bytes (the store then recognises
    it as the same event) and two different plaintexts never share a nonce.
    """
    data = plaintext.encode()
    aad = _associated(event_id, field)
    nonce = hmac.new(key, b"evsrc-nonce\x00" + aad + b"\x00" + data, hashlib.sha256).digest()
    nonce = nonce[:_NONCE_BYTES]
    sealed = nonce + _cipher(key).encrypt(nonce, data, aad)
    return {ENVELOPE_KEY: key_id + "." + base64.urlsafe_b64encode(sealed).decode()}


def envelope_of(value: object) -> tuple[str, bytes] | None:
    """``(key id, sealed bytes)`` if ``value`` is an envelope :func:`seal` made, else ``None``."""
    if type(value) is not dict or len(value) != 1:
        return None
    token = value.get(ENVELOPE_KEY)
    if type(token) is not str:
        return None
    key_id, dot, body = token.partition(".")
    if not dot or len(key_id) != 32:
        return None
    try:
        sealed = base64.urlsafe_b64decode(body.encode())
    except (binascii.Error, ValueError):
        return None
    if len(sealed) <= _NONCE_BYTES:
        return None
    return key_id, sealed


def unseal(key: bytes, sealed: bytes, event_id: bytes, field: str) -> str:
    """The plaintext of an envelope's sealed bytes; ``InvalidTag`` if they were altered."""
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    plaintext: bytes = _cipher(key).decrypt(nonce, body, _associated(event_id, field))
    return plaintext.decode()
