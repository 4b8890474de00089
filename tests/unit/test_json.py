"""The JSON rule for event data, the same on every supported Python (evsrc._json)."""

from __future__ import annotations

import enum
import json
import math
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from evsrc._json import decode_metadata, decode_objects, encode_object


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    __slots__ = ()


class Count(int):
    pass


ACCEPTED: list[tuple[str, Any, Any]] = [
    ("empty", {}, {}),
    ("plain", {"actor": "ann", "n": 1, "x": 2.5, "ok": True}, None),
    ("null", {"a": None}, None),
    ("negative zero", {"z": -0.0}, None),
    ("huge int", {"n": 2**100, "m": -(2**70)}, None),
    ("tuple", {"t": (1, (2, 3))}, {"t": [1, [2, 3]]}),
    (
        "non-str keys",
        {7: "a", 2.5: "b", False: "c", None: "d"},
        {"7": "a", "2.5": "b", "false": "c", "null": "d"},
    ),
    ("uuid", {"u": uuid.UUID(int=1)}, {"u": "00000000-0000-0000-0000-000000000001"}),
    ("enum", {"c": Colour.RED, "l": Level.HIGH}, {"c": "red", "l": 3}),
    ("str and int subclasses", {"n": Name("bo"), "c": Count(4)}, {"n": "bo", "c": 4}),
    ("unicode", {"s": "ü€😀\u2028\u0001"}, None),
    ("deep", {"d": [[[[[[[[[[{"x": None}]]]]]]]]]]}, None),
]


def _nested(depth: int) -> dict[str, Any]:
    value: Any = None
    for _ in range(depth):
        value = [value]
    return {"d": value}


@pytest.mark.parametrize(("case", "value", "expected"), ACCEPTED, ids=[c for c, _, _ in ACCEPTED])
def test_accepted_values_round_trip(case: str, value: Any, expected: Any) -> None:
    text, size = encode_object(value)
    assert size == len(text.encode())
    assert json.loads(text) == (value if expected is None else expected)
    assert " " not in text.replace('" "', "")  # compact


def test_nesting_beyond_orjson_depth_is_still_encoded() -> None:
    value = _nested(300)
    text, _ = encode_object(value)
    assert json.loads(text) == value


def _cyclic() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["me"] = [d]
    return d


REFUSED: list[tuple[str, Any]] = [
    ("nan", {"x": math.nan}),
    ("nan beside null", {"a": None, "x": [math.nan]}),
    ("infinity", {"x": math.inf}),
    ("minus infinity", {"x": -math.inf}),
    ("set", {"x": {1}}),
    ("bytes", {"x": b"a"}),
    ("datetime", {"x": datetime.now(UTC)}),
    ("object", {"x": object()}),
    ("cycle", _cyclic()),
    ("lone high surrogate", {"x": "a\ud800"}),
    ("lone low surrogate in key", {"\udc00": 1}),
    ("surrogate beside a big int", {"n": 2**70, "x": "\ud800"}),
    ("tuple key", {(1, 2): 1}),
]


@pytest.mark.parametrize(("case", "value"), REFUSED, ids=[c for c, _ in REFUSED])
def test_refused_values(case: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        encode_object(value)


def test_size_counts_utf8_bytes() -> None:
    text, size = encode_object({"x": "é€😀"})
    assert size == len(text.encode("utf-8")) == len('{"x":""}') + 2 + 3 + 4
    # the same through the strict path (an int key makes orjson decline)
    text, size = encode_object({1: "é€😀"})
    assert size == len(text.encode("utf-8"))


def test_decode_pages() -> None:
    assert decode_objects(['{"a":1}', "{}"]) == [{"a": 1}, {}]
    assert decode_metadata(["{}", "{}"]) == [{}, {}]
    assert decode_metadata(["{}", '{"c":"x"}']) == [{}, {"c": "x"}]


#: Texts where orjson and json.loads part ways, or orjson refuses what json reads: each
#: page decodes exactly as json.loads decodes it (an int stays an int, however long).
DECODED_AS_JSON: list[tuple[str, str]] = [
    ("int beyond 64 bits", '{"n": 123456789012345678901234567890}'),
    ("negative int beyond 64 bits", '{"n": -9223372036854775809}'),
    ("u64 max", '{"n": 18446744073709551615}'),
    ("float as numeric text", '{"x": 150000000000000000000000000000000000000000000000000000}'),
    ("long decimal", '{"x": 0.1000000000000000055511151231257827021181583404541015625}'),
    ("tiny decimal", '{"x": 0.000000000000000000000000000012345}'),
    ("digits in a string", '{"s": "12345678901234567890123"}'),
    ("plain", '{"actor": "actor-1", "x": 2.5, "t": [true, false, null], "u": "\\u00e9"}'),
    ("non-ascii", '{"s": "ü€😀\u2028", "n": 1234567890123456789}'),
    ("nan", '{"x": NaN}'),
    ("escaped lone surrogate", '{"s": "\\ud800"}'),
    ("lone surrogate", '{"s": "\ud800"}'),
    ("duplicate keys", '{"a": 1, "a": 2}'),
    ("negative zero", '{"a": -0, "b": -0.0, "c": 1E2, "d": 1e-7}'),
]


@pytest.mark.parametrize(("case", "text"), DECODED_AS_JSON, ids=[c for c, _ in DECODED_AS_JSON])
def test_pages_decode_as_json_loads_does(case: str, text: str) -> None:
    page = [text, '{"a": 1}', "{}"]
    want = json.loads("[" + ",".join(page) + "]")
    got = decode_objects(page)
    assert repr(got) == repr(want)  # types too: 1 is not 1.0, NaN reprs alike
    assert [type(v) for d in got if isinstance(d, dict) for v in d.values()] == [
        type(v) for d in want if isinstance(d, dict) for v in d.values()
    ]


def test_pages_json_refuses_are_refused() -> None:
    with pytest.raises(ValueError, match="Expecting"):
        decode_objects(['{"a": 1}', "{"])
    with pytest.raises(RecursionError):
        decode_objects(["[" * 100_000 + "]" * 100_000])


def test_no_private_cpython_json_internals() -> None:
    """The 3.13 break came from json.encoder.c_make_encoder; nothing in evsrc may call it."""
    from pathlib import Path

    import evsrc

    root = Path(evsrc.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "c_make_encoder" not in text, path
        assert "encode_basestring" not in text, path


def test_running_interpreter_is_supported() -> None:
    assert sys.version_info >= (3, 11)
