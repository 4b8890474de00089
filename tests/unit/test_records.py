"""Value types and errors, without a store."""

from __future__ import annotations

import pickle
import typing
from datetime import UTC, datetime
from uuid import RFC_4122, UUID, uuid4

import pydantic
import pytest

from evsrc import (
    Checkpoint,
    Committed,
    Conflict,
    DuplicateEventIdError,
    EvsrcError,
    InvalidCheckpointError,
    InvalidInputError,
    NewEvent,
    OutcomeUnknownError,
    RecordedEvent,
    RetriesExhaustedError,
    StoreUnavailableError,
)


def test_checkpoints_order_by_commit_then_position() -> None:
    assert Checkpoint(1, 9) < Checkpoint(2, 3) < Checkpoint(2, 4)
    assert sorted([Checkpoint(5, 1), Checkpoint(1, 5)]) == [Checkpoint(1, 5), Checkpoint(5, 1)]


@pytest.mark.parametrize("cp", [Checkpoint(0, 0), Checkpoint(7, 12), Checkpoint(2**63, 2**62)])
def test_checkpoint_text_round_trips(cp: Checkpoint) -> None:
    assert Checkpoint.parse(str(cp)) == cp


@pytest.mark.parametrize("text", ["", "1", "1:", ":1", "a:b", "1:2:3", "-1:2", " 1:2", 12])
def test_checkpoint_parse_refuses_garbage(text: object) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.parse(text)  # type: ignore[arg-type]
    assert isinstance(info.value, InvalidInputError)
    assert info.value.argument == "checkpoint"


@pytest.mark.parametrize("parts", [(-1, 0), (0, -1), (1.0, 2), ("1", 2), (True, 1)])
def test_checkpoint_refuses_bad_parts(parts: tuple[object, object]) -> None:
    with pytest.raises(InvalidCheckpointError):
        Checkpoint(*parts)  # type: ignore[arg-type]


def test_checkpoint_is_an_immutable_validated_named_tuple() -> None:
    cp = Checkpoint(3, 4)
    assert (cp.commit, cp.position) == (3, 4)
    assert repr(cp) == "Checkpoint(commit=3, position=4)"
    assert cp._replace(position=9) == Checkpoint(3, 9)
    with pytest.raises(InvalidCheckpointError):
        cp._replace(commit=-1)
    with pytest.raises(ValueError, match="unexpected field"):
        cp._replace(seq=1)
    with pytest.raises(AttributeError):
        cp.commit = 5  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(cp)) == cp
    assert hash(cp) == hash(Checkpoint(3, 4))


def test_returned_values_are_named_tuples() -> None:
    ev = RecordedEvent(
        "s", 1, 1, Checkpoint(1, 1), uuid4(), "t", 1, {"a": 1}, {}, datetime.now(UTC)
    )
    assert ev._replace(seq=2).seq == 2
    assert ev._asdict()["data"] == {"a": 1}
    with pytest.raises(AttributeError):
        ev.seq = 3  # type: ignore[misc]
    assert Committed("s", 1, 1, 1, Checkpoint(1, 1)) != Conflict("s", 0, 1)
    assert pickle.loads(pickle.dumps(ev)) == ev


def test_new_event_gets_a_fresh_id() -> None:
    a, b = NewEvent("t"), NewEvent("t")
    assert a.id != b.id
    assert a.data == {} and a.metadata == {} and a.version == 1


def test_new_event_ids_are_random_version_4_uuids_like_uuid4s() -> None:
    # Drawn from evsrc._ids (a block of OS random bytes at a time), more than
    # one block's worth: each a version-4, RFC 4122 UUID that behaves as one.
    ids = [NewEvent("t").id for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(u.version == 4 and u.variant == RFC_4122 for u in ids)
    assert {u == UUID(str(u)) and hash(u) == hash(UUID(str(u))) for u in ids} == {True}
    assert pickle.loads(pickle.dumps(ids[0])) == ids[0]
    # Random bits: every one of the 122 is set in some id and clear in another.
    free = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
    ors, ands = 0, free
    for u in ids:
        ors |= u.int & free
        ands &= u.int
    assert ors == free and ands == 0


def test_new_event_type_hints_resolve_at_run_time() -> None:
    # What pydantic's TypeAdapter and hypothesis' builds() read.
    hints = typing.get_type_hints(NewEvent)
    assert hints["id"] is UUID and hints["type"] is str and hints["version"] is int
    adapter = pydantic.TypeAdapter(NewEvent)
    ev = adapter.validate_python({"type": "t", "id": str(NewEvent("t").id)})
    assert isinstance(ev.id, UUID)


def test_errors_carry_fields_and_a_default_message() -> None:
    assert str(StoreUnavailableError()) == "The event store's backend cannot be reached."
    err = OutcomeUnknownError(stream="s")
    assert err.stream == "s" and isinstance(err, StoreUnavailableError)
    assert "retrying it is safe" in str(err)
    dup = DuplicateEventIdError(event_id=NewEvent("t").id, stream="s", seq=3)
    assert dup.stream == "s" and dup.seq == 3 and "'s' seq 3" in str(dup)
    ex = RetriesExhaustedError(stream="s", attempts=4)
    assert ex.attempts == 4 and "4 times" in str(ex)
    assert isinstance(InvalidInputError("x", argument="a", value=1), ValueError)
    assert issubclass(InvalidInputError, EvsrcError)
