"""Frozen records built through their slots' descriptors are the same records as before.

``Outcome``, ``Decision``, ``Rejection``, ``BookingResult`` and the ``NewEvent``
of ``EventRegistry.encode`` skip a frozen dataclass's ``object.__setattr__`` per
field (a hot path); they must still compare, hash, replace, repr and refuse
mutation as the dataclasses they are.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from evsrc import Accepted, Decision, Event, EventRegistry, NewEvent, Rejected, Rejection
from examples.booking import BookingResult, BookingStatus


class Noted(Event, type="noted", version=2):
    text: str


def test_encode_builds_the_same_new_event_as_its_constructor() -> None:
    registry = EventRegistry(Noted)
    event_id = uuid.uuid4()
    md = {"causation_id": "c"}
    new = registry.encode(Noted(text="hi"), metadata=md, id=event_id)
    assert type(new) is NewEvent
    assert new == NewEvent("noted", {"text": "hi"}, {"causation_id": "c"}, event_id, 2)
    assert new.metadata is not md  # a copy, as before
    assert hash(new.id) == hash(event_id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.type = "other"  # type: ignore[misc]
    assert registry.encode(Noted(text="x")).metadata == {}


@pytest.mark.parametrize(
    "make",
    [
        lambda: Accepted("s", 1, [], 7, None, None),
        lambda: Rejected("s", 2, [], None, Rejection("no", 3), None),
        lambda: Decision([], 5),
        lambda: Rejection("no", {"detail": 1}),
        lambda: BookingResult(BookingStatus.BOOKED, "ann", seat=1, capacity=2),
    ],
)
def test_frozen_records_keep_their_dataclass_behaviour(make: object) -> None:
    a, b = make(), make()  # type: ignore[operator]
    assert a == b
    assert repr(a) == repr(b)
    field = dataclasses.fields(a)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(a, field, None)
    changed = dataclasses.replace(a, **{field: getattr(a, field)})
    assert changed == a and type(changed) is type(a)


def test_outcome_keywords_and_booking_result_defaults() -> None:
    out = Accepted(stream="s", attempts=1, events=(), result=None, rejection=None, committed=None)
    assert out.ok and out.stream == "s"
    r = BookingResult(BookingStatus.FULL, "bob", capacity=3)
    defaults = (r.seat, r.attempts, r.last_seq, r.checkpoint, r.expires_at)
    assert defaults == (None, 1, None, None, None)
    assert hash(r) == hash(BookingResult(BookingStatus.FULL, "bob", capacity=3))
