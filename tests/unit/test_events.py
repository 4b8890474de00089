"""Value types and errors, without a store."""

from __future__ import annotations

import pytest

from evsrc import (
    Checkpoint,
    DuplicateEventIdError,
    EvsrcError,
    InvalidCheckpointError,
    InvalidInputError,
    NewEvent,
    OutcomeUnknownError,
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


def test_new_event_gets_a_fresh_id() -> None:
    a, b = NewEvent("t"), NewEvent("t")
    assert a.id != b.id
    assert a.data == {} and a.metadata == {} and a.version == 1


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
