"""JSON text for event data and metadata: what every backend stores and reads.

One rule for every backend and every supported Python: an event's ``data`` and
``metadata`` are dicts of JSON values — ``str`` (valid Unicode: no lone
surrogates), ``int``, finite ``float``, ``bool``, ``None``, lists or tuples,
and dicts whose keys are ``str`` (``int``, ``float``, ``bool`` and ``None``
keys become strings, as :mod:`json` does). ``uuid.UUID`` values and enum
members are stored as their JSON form (the UUID's text, the member's value).
Anything else — sets, bytes, datetimes, NaN or infinity, cycles — is refused
with :class:`TypeError` or :class:`ValueError`.

orjson does the encoding; whatever it declines, and any output in which it
may have written a NaN as ``null``, is settled by the standard library's
strict encoder, so the rule above does not depend on orjson's own choices.
See docs/backends.md ("JSON").
"""

from __future__ import annotations

import enum
import json
import uuid
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "ORJSON_OPTIONS",
    "decode_metadata",
    "decode_objects",
    "encode_object",
    "orjson_decline",
    "same_json_text",
]

_OPTIONS: Final = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _decline(value: object) -> Any:
    """orjson's hook for what it does not encode itself: let the strict encoder decide."""
    raise TypeError


def _strict_default(value: object) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    msg = f"Object of type {type(value).__name__} is not JSON serializable"
    raise TypeError(msg)


# check_circular=True (the default): a cycle is a ValueError, not a RecursionError.
_strict = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_strict_default
).encode
_dumps = orjson.dumps
_JSONEncodeError = orjson.JSONEncodeError

#: For a hot path that inlines :func:`encode_object`'s first step:
#: ``orjson.dumps(value, orjson_decline, ORJSON_OPTIONS)`` settles the rule alone
#: when it raises nothing and its output holds no ``null`` (test the decoded
#: text: ``in`` on bytes is slow); otherwise call :func:`encode_object`.
ORJSON_OPTIONS: Final = _OPTIONS
orjson_decline: Final = _decline


def encode_object(value: object) -> tuple[str, int]:
    """Encode a JSON value as compact JSON: ``(text, size of its UTF-8 form in bytes)``.

    Raises ``TypeError`` or ``ValueError`` for what is not a JSON value under
    the module's rule: lone surrogates, NaN and infinities included
    (PostgreSQL's jsonb refuses them too).
    """
    try:
        raw = _dumps(value, _decline, _OPTIONS)
    except _JSONEncodeError:
        raw = None
    if raw is not None:
        text = raw.decode()
        # A str test: ``in`` on bytes goes through the buffer protocol, several times slower.
        if "null" not in text:
            return text, len(raw)
    # orjson declined (a non-str key, an int beyond 64 bits, a str subclass,
    # a lone surrogate, deep nesting, an unknown type), or wrote a null that may
    # stand for a NaN: the standard library's strict encoder has the last word.
    text = _strict(value)
    try:
        size = len(text.encode())
    except UnicodeEncodeError as exc:
        msg = "a string contains a lone surrogate (not valid Unicode)"
        raise ValueError(msg) from exc
    return text, size


_loads = json.loads
_orjson_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
#: Every ASCII digit becomes "0", every other byte a space: a run of 19 digits
#: in a text shows as ``_LONG_DIGITS`` in its translation (UTF-8 has no digit
#: bytes inside multi-byte characters).
_DIGITS: Final = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_DIGITS: Final = b"0" * 19


def decode_objects(texts: Sequence[str]) -> list[dict[str, Any]]:
    """Decode stored JSON object texts in one call (a backend's read path).

    The result is :func:`json.loads`'s, whatever the text. orjson parses the
    page when it agrees: it reads an integer beyond 64 bits as a float, so a
    page with a run of 19 or more digits anywhere (an integer that may be
    beyond, or a long decimal) goes to :mod:`json`, as does anything orjson
    refuses (its nesting limit, NaN, lone surrogates), to decode or raise as
    :mod:`json` does.
    """
    text = "[" + ",".join(texts) + "]"
    decoded: list[dict[str, Any]]
    if _LONG_DIGITS not in text.encode("utf-8", "surrogatepass").translate(_DIGITS):
        try:
            decoded = _orjson_loads(text)
        except _JSONDecodeError:
            pass
        else:
            return decoded
    decoded = _loads(text)
    return decoded


def decode_metadata(texts: Sequence[str]) -> list[dict[str, Any]]:
    """Like :func:`decode_objects`, with a shortcut for the common all-empty page."""
    if texts.count("{}") != len(texts):
        return decode_objects(texts)
    return [{} for _ in texts]


def same_json_text(sent: str, stored: str) -> bool:
    """Whether two JSON texts hold the same value, as PostgreSQL's jsonb compares them."""
    return sent == stored or _json_equal(decode_objects([sent])[0], decode_objects([stored])[0])


def _json_equal(a: object, b: object) -> bool:
    # Numbers compare by value (1 == 1.0, as jsonb), but true is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(_json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b
