"""The event codec: pydantic models in, NewEvent out; RecordedEvent in, models out."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pydantic
import pytest

from evsrc import (
    Checkpoint,
    Event,
    EventCodecError,
    EventDecodeError,
    EventRegistry,
    RecordedEvent,
    UnknownEventTypeError,
)


class Booked(Event, type="booking"):
    actor: str


class Priced(Event, type="priced", version=3):
    id: UUID
    at: datetime
    amount: Decimal
    tags: tuple[str, ...] = ()


class RenamedV1(Event, type="renamed", version=1):
    name: str


class Renamed(Event, type="renamed", version=3):
    first: str
    last: str
    source: str


def recorded(
    type: str, data: dict[str, Any], version: int = 1, stream: str = "s-1", seq: int = 1
) -> RecordedEvent:
    return RecordedEvent(
        stream, seq, seq, Checkpoint(seq, seq), uuid4(), type, version, data, {}, datetime.now(UTC)
    )


def roundtrip(registry: EventRegistry, event: Event) -> Event:
    new = registry.encode(event)
    import json

    data = json.loads(json.dumps(new.data))  # what a store hands back
    return registry.decode(recorded(new.type, data, new.version))


def test_class_keywords_declare_type_and_version() -> None:
    assert (Booked.event_type, Booked.event_version) == ("booking", 1)
    assert (Priced.event_type, Priced.event_version) == ("priced", 3)


def test_events_are_frozen_and_refuse_extra_fields() -> None:
    b = Booked(actor="ann")
    with pytest.raises(pydantic.ValidationError):
        b.actor = "bob"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        Booked(actor="ann", seat=3)  # type: ignore[call-arg]


def test_encode_gives_a_new_event_with_type_version_metadata_and_id() -> None:
    reg = EventRegistry(Booked)
    eid = uuid4()
    new = reg.encode(Booked(actor="ann"), metadata={"correlation": "c1"}, id=eid)
    assert (new.type, new.version, new.data, new.metadata, new.id) == (
        "booking",
        1,
        {"actor": "ann"},
        {"correlation": "c1"},
        eid,
    )
    assert reg.encode(Booked(actor="a")).id != reg.encode(Booked(actor="a")).id


def test_uuid_datetime_decimal_round_trip() -> None:
    reg = EventRegistry(Priced)
    ev = Priced(
        id=uuid4(), at=datetime(2024, 5, 1, 9, 30, tzinfo=UTC), amount=Decimal("10.05"), tags=("a",)
    )
    new = reg.encode(ev)
    assert isinstance(new.data["id"], str) and isinstance(new.data["amount"], str)
    assert roundtrip(reg, ev) == ev


def test_register_as_decorator_and_membership() -> None:
    reg = EventRegistry()

    @reg.register
    class Cancelled(Event, type="cancelled"):
        actor: str

    assert Cancelled in reg and "cancelled" in reg and "booking" not in reg
    assert reg.model("cancelled") is Cancelled
    assert list(reg) == [Cancelled]


def test_register_refuses_non_events_abstract_events_and_clashes() -> None:
    reg = EventRegistry(Booked)

    class Base(Event):
        actor: str

    class Other(Event, type="booking"):
        actor: str

    with pytest.raises(EventCodecError, match="declares no event type"):
        reg.register(Base)
    with pytest.raises(EventCodecError, match="already registered"):
        reg.register(Other)
    with pytest.raises(EventCodecError):
        reg.register(dict)  # type: ignore[type-var]
    reg.register(Booked)  # registering the same model again is harmless


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(EventCodecError):

        class Bad(Event, type=""):
            pass

    with pytest.raises(EventCodecError):

        class Bad2(Event, type="x", version=0):
            pass


def test_subclass_of_an_event_without_type_is_not_that_event() -> None:
    class Sub(Booked):
        pass

    reg = EventRegistry(Booked)
    with pytest.raises(EventCodecError, match="declares no event type"):
        reg.register(Sub)
    with pytest.raises(UnknownEventTypeError):
        reg.encode(Sub(actor="x"))


def test_encoding_an_unregistered_event_is_an_unknown_type() -> None:
    with pytest.raises(UnknownEventTypeError) as info:
        EventRegistry().encode(Booked(actor="ann"))
    assert (info.value.type, info.value.version) == ("booking", 1)


def test_decoding_an_unknown_type_or_a_newer_version_is_an_unknown_type() -> None:
    reg = EventRegistry(Booked)
    with pytest.raises(UnknownEventTypeError) as info:
        reg.decode(recorded("nope", {}))
    assert (info.value.type, info.value.version) == ("nope", 1)
    with pytest.raises(UnknownEventTypeError) as info:
        reg.decode(recorded("booking", {"actor": "a"}, version=2))
    assert info.value.version == 2


def test_a_payload_that_no_longer_validates_is_a_decode_error() -> None:
    reg = EventRegistry(Booked)
    with pytest.raises(EventDecodeError) as info:
        reg.decode(recorded("booking", {"actor": 5, "seat": 1}, stream="booking:x", seq=7))
    err = info.value
    assert (err.stream, err.seq, err.type) == ("booking:x", 7, "booking")  # type: ignore[attr-defined]
    assert "booking:x#7" in str(err)
    assert isinstance(err.__cause__, pydantic.ValidationError)


def make_renaming_registry() -> EventRegistry:
    reg = EventRegistry(Renamed)

    @reg.upcaster("renamed", from_version=1)
    def split(data: dict[str, Any]) -> dict[str, Any]:
        first, _, last = data.pop("name").partition(" ")
        return {"first": first, "last": last}

    @reg.upcaster("renamed", from_version=2)
    def add_source(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "source": "legacy"}

    return reg


def test_upcasters_chain_old_versions_to_the_current_model() -> None:
    reg = make_renaming_registry()
    assert reg.current_version("renamed") == 3
    v1 = reg.decode(recorded("renamed", {"name": "Ada Lovelace"}, version=1))
    assert v1 == Renamed(first="Ada", last="Lovelace", source="legacy")
    v2 = reg.decode(recorded("renamed", {"first": "A", "last": "B"}, version=2))
    assert v2 == Renamed(first="A", last="B", source="legacy")
    v3 = reg.decode(recorded("renamed", {"first": "A", "last": "B", "source": "s"}, version=3))
    assert v3 == Renamed(first="A", last="B", source="s")


def test_upcaster_does_not_mutate_the_stored_data() -> None:
    reg = make_renaming_registry()
    ev = recorded("renamed", {"name": "Ada Lovelace"}, version=1)
    reg.decode(ev)
    assert ev.data == {"name": "Ada Lovelace"}


def test_old_model_decodes_its_version_when_no_upcaster_exists() -> None:
    reg = EventRegistry(RenamedV1, Renamed)
    assert reg.decode(recorded("renamed", {"name": "Ada"}, version=1)) == RenamedV1(name="Ada")
    assert reg.encode(RenamedV1(name="x")).version == 1


def test_a_gap_in_the_upcaster_chain_is_an_unknown_type() -> None:
    reg = EventRegistry(Renamed)

    @reg.upcaster("renamed", from_version=1)
    def split(data: dict[str, Any]) -> dict[str, Any]:
        return {"first": data["name"], "last": ""}

    with pytest.raises(UnknownEventTypeError) as info:
        reg.decode(recorded("renamed", {"name": "Ada"}, version=1))
    assert info.value.version == 2


def test_a_failing_upcaster_is_a_decode_error() -> None:
    reg = make_renaming_registry()
    with pytest.raises(EventDecodeError, match="upcaster"):
        reg.decode(recorded("renamed", {"nom": "Ada"}, version=1))

    @reg.upcaster("renamed", from_version=5)
    def bad(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(EventCodecError, match="already registered"):
        reg.upcaster("renamed", from_version=5)(lambda d: d)
    with pytest.raises(EventCodecError):
        reg.upcaster("renamed", from_version=0)


def test_an_upcaster_returning_a_non_dict_is_a_decode_error() -> None:
    reg = EventRegistry(Renamed)
    reg.upcaster("renamed", 2)(lambda d: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(EventDecodeError, match="not a dict"):
        reg.decode(recorded("renamed", {}, version=2))


def test_aliases_round_trip() -> None:
    class Aliased(Event, type="aliased"):
        model_config = pydantic.ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
        user_id: int = pydantic.Field(alias="userId")

    reg = EventRegistry(Aliased)
    ev = Aliased(userId=3)
    assert reg.encode(ev).data == {"userId": 3}
    assert roundtrip(reg, ev) == ev
