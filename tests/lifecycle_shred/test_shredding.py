"""Personal fields encrypted per subject on every backend; forgetting a subject redacts them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, ClassVar
from uuid import uuid4

import anyio
import pytest

from evsrc.errors import (
    EventCodecError,
    EventDecodeError,
    EventIdReusedError,
    InvalidEventError,
    InvalidInputError,
)
from evsrc.keys import InMemoryKeyStore
from evsrc.memory import InMemoryEventStore
from evsrc.models import Event, EventRegistry
from evsrc.projection import ProjectionRunner, Projector, handles
from evsrc.records import Committed, NewEvent
from evsrc.shredding import REDACTED_PREFIX, Personal, ShreddingStore, personal_fields, redacted
from tests.lifecycle_shred.conftest import Booked, Noted, Shredded, another_key_store, registry

if TYPE_CHECKING:
    from evsrc.records import RecordedEvent


def _raw_text(events: list[RecordedEvent]) -> str:
    return json.dumps([e.data for e in events], ensure_ascii=False)


async def test_personal_fields_are_encrypted_at_rest_and_read_back(shredded: Shredded) -> None:
    s = shredded.store
    await s.append(
        "s-1",
        [
            registry.encode(Booked(actor="alice@example.org", seat=3)),
            registry.encode(Noted(actor="alice@example.org", note="vegan", public="hello")),
        ],
    )
    at_rest = await shredded.raw.read("s-1")
    assert "alice@example.org" not in _raw_text(at_rest)
    assert "vegan" not in _raw_text(at_rest)
    assert at_rest[0].data["seat"] == 3
    assert at_rest[1].data["public"] == "hello"
    assert at_rest[1].data["nickname"] is None
    # The same subject's two fields use the same key; the envelope names its id only.
    kid_actor = at_rest[1].data["actor"]["$pii"].split(".")[0]
    kid_note = at_rest[1].data["note"]["$pii"].split(".")[0]
    assert kid_actor == kid_note
    back = [registry.decode(e) for e in await s.read("s-1")]
    assert back == [
        Booked(actor="alice@example.org", seat=3),
        Noted(actor="alice@example.org", note="vegan", public="hello"),
    ]
    via_all = [registry.decode(e) async for e in s.read_all()]
    assert via_all == back


async def test_forget_redacts_every_field_of_the_subject_only(shredded: Shredded) -> None:
    s = shredded.store
    await s.append("s-1", [registry.encode(Noted(actor="alice", note="a1", nickname="al"))])
    await s.append("s-2", [registry.encode(Booked(actor="alice", seat=1))])
    await s.append("s-2", [registry.encode(Booked(actor="bob", seat=2))])
    await s.append("s-3", [registry.encode(Booked(actor="carol", seat=1))])
    assert await s.forget("alice") is True
    assert await s.forget("alice") is False
    assert await s.forget("carol") is True

    noted = registry.decode((await s.read("s-1"))[0])
    assert isinstance(noted, Noted)
    assert noted.actor.startswith(REDACTED_PREFIX)
    assert noted.note == noted.actor == noted.nickname
    s2 = [registry.decode(e) for e in await s.read("s-2")]
    assert isinstance(s2[0], Booked) and isinstance(s2[1], Booked)
    assert s2[0].actor == noted.actor  # one pseudonym per forgotten subject, in every stream
    assert s2[1].actor == "bob"
    carol = registry.decode((await s.read("s-3"))[0])
    assert isinstance(carol, Booked)
    assert carol.actor.startswith(REDACTED_PREFIX) and carol.actor != noted.actor
    # Through a fresh key store too (no cache), and through read_all and subscribe.
    fresh = another_key_store(shredded)
    async with fresh:
        other = ShreddingStore(shredded.raw, fresh, registry, owns_inner=False)
        actors = [e.data["actor"] async for e in other.read_all()]
        assert actors == [noted.actor, noted.actor, "bob", carol.actor]
        seen: list[str] = []
        async for e in other.subscribe():
            seen.append(e.data["actor"])
            if len(seen) == 4:
                break
        assert seen == actors


async def test_a_forgotten_subject_who_returns_gets_a_new_key(shredded: Shredded) -> None:
    s = shredded.store
    await s.append("s-1", [registry.encode(Booked(actor="alice", seat=1))])
    await s.forget("alice")
    await s.append("s-1", [registry.encode(Booked(actor="alice", seat=2))])
    first, second = [e.data["actor"] for e in await s.read("s-1")]
    assert first.startswith(REDACTED_PREFIX)
    assert second == "alice"


async def test_resending_an_append_is_recognised_and_other_content_is_refused(
    shredded: Shredded,
) -> None:
    s = shredded.store
    events = [
        registry.encode(Booked(actor="alice", seat=1)),
        registry.encode(Noted(actor="alice", note="n")),
    ]
    first = await s.append_expect("s-1", 0, events)
    assert isinstance(first, Committed)
    # A re-send (a retry after a lost reply) encrypts to the same bytes.
    again = await s.append_expect("s-1", 0, events)
    assert again == first
    assert await s.append("s-1", events) == first
    changed = [events[0], NewEvent("noted", {**events[1].data, "note": "m"}, id=events[1].id)]
    with pytest.raises(EventIdReusedError):
        await s.append_expect("s-1", 0, changed)
    assert [e.data["note"] for e in (await s.read("s-1"))[1:]] == ["n"]


async def test_many_writers_creating_a_new_subjects_key_end_with_one_key(
    shredded: Shredded,
) -> None:
    # Key stores with no cache, so that every writer goes to the key table itself.
    stores = [another_key_store(shredded) for _ in range(3)]
    results: list[tuple[int, str]] = []

    async def write(i: int) -> None:
        wrapper = ShreddingStore(shredded.raw, stores[i % 3], registry, owns_inner=False)
        await wrapper.append(f"s-{i}", [registry.encode(Booked(actor="newcomer", seat=i))])
        results.append((i, (await shredded.raw.read(f"s-{i}"))[0].data["actor"]["$pii"]))

    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(write, i)
    key_ids = {token.split(".")[0] for _, token in results}
    assert len(results) == 30
    assert len(key_ids) == 1
    for ks in stores:
        await ks.close()
    actors = [e.data["actor"] async for e in shredded.store.read_all()]
    assert actors == ["newcomer"] * 30


class Guests(Projector):
    name: ClassVar[str] = "guests"

    def __init__(self) -> None:
        self.guests: list[str] = []

    @handles(Booked)
    async def on_booked(self, e: Booked, r: RecordedEvent) -> None:
        self.guests.append(e.actor)


async def test_a_projection_rebuilt_after_forget_holds_no_plaintext(shredded: Shredded) -> None:
    s = shredded.store
    for i, actor in enumerate(["alice", "bob", "alice"]):
        await s.append(f"s-{i}", [registry.encode(Booked(actor=actor, seat=1))])
    before = Guests()
    await ProjectionRunner(s, before).catch_up()
    assert before.guests == ["alice", "bob", "alice"]
    await s.forget("alice")
    rebuilt = Guests()
    await ProjectionRunner(s, rebuilt, name="guests-rebuilt").catch_up()
    assert "alice" not in rebuilt.guests
    assert rebuilt.guests[1] == "bob"
    assert rebuilt.guests[0] == rebuilt.guests[2]
    assert rebuilt.guests[0].startswith(REDACTED_PREFIX)


async def test_bad_input_is_refused_and_nothing_is_written(shredded: Shredded) -> None:
    s = shredded.store
    smuggled = NewEvent("booked", {"actor": {"$pii": "0" * 32 + ".AAAA"}, "seat": 1})
    with pytest.raises(InvalidEventError):
        await s.append("s-1", [smuggled])
    elsewhere = NewEvent("other", {"x": {"$pii": "anything"}})
    with pytest.raises(InvalidEventError):
        await s.append("s-1", [elsewhere])
    not_a_str = NewEvent("booked", {"actor": 42, "seat": 1})
    with pytest.raises(InvalidEventError):
        await s.append("s-1", [not_a_str])
    no_subject = NewEvent("noted", {"actor": None, "note": "secret"})
    with pytest.raises(InvalidEventError):
        await s.append("s-1", [no_subject])
    with pytest.raises(InvalidInputError):
        await s.append("s-1", [NewEvent("booked", {"actor": "x" * 300, "seat": 1})])
    for version in ([1], "1", 0):
        with pytest.raises(InvalidEventError):
            await s.append("s-1", [NewEvent("booked", {"actor": "a"}, version=version)])  # type: ignore[arg-type]
    for bad in ("", "a\x00b", 7, "x" * 256):
        with pytest.raises(InvalidInputError):
            await s.forget(bad)  # type: ignore[arg-type]
    assert await shredded.raw.last_seq("s-1") == 0
    with pytest.raises(InvalidEventError):
        await s.append("s-1", [])


async def test_an_envelope_altered_at_rest_is_a_decode_error() -> None:
    raw = InMemoryEventStore()
    keys = InMemoryKeyStore()
    s = ShreddingStore(raw, keys, registry)
    await s.append("s-1", [registry.encode(Booked(actor="alice", seat=1))])
    stored = (await raw.read("s-1"))[0]
    kid, body = stored.data["actor"]["$pii"].split(".")
    # The same ciphertext moved into another event (other id): refused too.
    moved = NewEvent("booked", {"actor": stored.data["actor"], "seat": 2})
    await raw.append("s-2", [moved])
    with pytest.raises(EventDecodeError) as info:
        await s.read("s-2")
    assert info.value.stream == "s-2"
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    await raw.append("s-3", [NewEvent("booked", {"actor": {"$pii": f"{kid}.{flipped}"}})])
    with pytest.raises(EventDecodeError):
        await s.read("s-3")
    await s.close()


def test_markers_are_checked_when_the_class_is_made() -> None:
    with pytest.raises(EventCodecError, match="only str"):

        class Aged(Event, type="aged"):
            age: Annotated[int, Personal()]

    class Orphan(Event, type="orphan"):
        note: Annotated[str, Personal(subject="nobody")]

    with pytest.raises(EventCodecError, match="nobody"):
        personal_fields(Orphan)
    with pytest.raises(EventCodecError):
        ShreddingStore(InMemoryEventStore(), InMemoryKeyStore(), EventRegistry(Orphan))
    assert [f.name for f in personal_fields(Noted)] == ["actor", "note", "nickname"]
    assert redacted("0123456789abcdef" * 2) == "[forgotten:01234567]"


async def test_a_forget_in_another_process_is_seen_after_the_cache_ttl() -> None:
    now = [0.0]
    raw = InMemoryEventStore()
    mine = InMemoryKeyStore(cache_ttl=5, clock=lambda: now[0])
    s = ShreddingStore(raw, mine, registry)
    await s.append("s-1", [registry.encode(Booked(actor="alice", seat=1))])
    assert (await s.read("s-1"))[0].data["actor"] == "alice"
    del mine.rows["alice"]  # as another process's forget would
    assert (await s.read("s-1"))[0].data["actor"] == "alice"  # still cached
    now[0] = 6.0
    assert (await s.read("s-1"))[0].data["actor"].startswith(REDACTED_PREFIX)
    with pytest.raises(InvalidInputError):
        InMemoryKeyStore(cache_ttl=-1)
    await s.close()


async def test_unmarked_events_and_plaintext_written_before_marking_pass_through(
    shredded: Shredded,
) -> None:
    await shredded.raw.append("s-1", [NewEvent("booked", {"actor": "legacy", "seat": 1})])
    await shredded.store.append("s-1", [NewEvent("other", {"actor": "anyone"}, id=uuid4())])
    assert [e.data["actor"] for e in await shredded.store.read("s-1")] == ["legacy", "anyone"]
    assert [e.data["actor"] for e in await shredded.raw.read("s-1")] == ["legacy", "anyone"]


async def test_nested_paths_of_unmarked_types_are_sealed_too(shredded: Shredded) -> None:
    s = ShreddingStore(
        shredded.raw,
        shredded.keys,
        registry,
        paths={"notice": {"payload.to": "payload.to", "payload.note": "payload.to"}},
        owns_inner=False,
    )
    payload = {"to": "alice", "note": "hi", "deep": {"x": 1}}
    ev = NewEvent("notice", {"topic": "t", "payload": payload})
    first = await s.append("n-1", [ev])
    assert await s.append("n-1", [ev]) == first  # re-sent: the same bytes
    await s.append("n-1", [NewEvent("notice", {"topic": "t", "payload": {"other": 1}})])
    raw = await shredded.raw.read("n-1")
    assert "alice" not in _raw_text(raw) and '"hi"' not in _raw_text(raw)
    assert raw[0].data["payload"]["deep"] == {"x": 1}
    assert [e.data for e in await s.read("n-1")] == [
        {"topic": "t", "payload": payload},
        {"topic": "t", "payload": {"other": 1}},
    ]
    with pytest.raises(InvalidEventError):
        await s.append("n-1", [NewEvent("x", {"a": {"b": {"$pii": "smuggled"}}})])
    await s.forget("alice")
    (opened, _) = await s.read("n-1")
    assert opened.data["payload"]["to"].startswith(REDACTED_PREFIX)
    assert opened.data["payload"]["note"] == opened.data["payload"]["to"]


async def test_events_read_from_the_inner_store_can_be_opened(shredded: Shredded) -> None:
    await shredded.store.append("s-1", [registry.encode(Booked(actor="alice", seat=1))])
    raw = await shredded.raw.read("s-1")
    assert raw[0].data["actor"] != "alice"
    (opened,) = await shredded.store.open_events(raw)
    assert opened.data == {"actor": "alice", "seat": 1}
    assert opened.id == raw[0].id and opened.checkpoint == raw[0].checkpoint


async def test_a_live_subscription_sees_plaintext_then_the_redacted_value(
    shredded: Shredded,
) -> None:
    s = shredded.store
    seen: list[str] = []
    got = anyio.Event()

    async def follow() -> None:
        async for e in s.subscribe(types=["booked"]):
            seen.append(e.data["actor"])
            if len(seen) == 2:
                got.set()
                return

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(0.05)
            await s.append("s-1", [registry.encode(Booked(actor="alice", seat=1))])
            await s.append("s-2", [registry.encode(Booked(actor="bob", seat=1))])
            await got.wait()
    assert seen == ["alice", "bob"]


async def test_shredding_over_compression_on_every_backend(shredded: Shredded) -> None:
    from evsrc.compression import CompressingStore

    inner = CompressingStore(shredded.raw, types=["noted"], threshold=0, owns_inner=False)
    s = ShreddingStore(inner, shredded.keys, registry, owns_inner=False)
    long_note = "remember: " + "x" * 2000
    await s.append("s-1", [registry.encode(Noted(actor="alice", note=long_note, public="p" * 900))])
    (at_rest,) = await shredded.raw.read("s-1")
    assert list(at_rest.data) == ["$z"]
    (back,) = await s.read("s-1")
    assert back.data["note"] == long_note and back.data["public"] == "p" * 900
    await s.forget("alice")
    (gone,) = await s.read("s-1")
    assert gone.data["note"].startswith(REDACTED_PREFIX) and gone.data["public"] == "p" * 900
