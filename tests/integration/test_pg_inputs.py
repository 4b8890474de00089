"""Identifiers and inputs are refused whole, before anything reaches PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from evsrc import (
    Checkpoint,
    EventIdReusedError,
    InvalidCheckpointError,
    InvalidEventError,
    InvalidInputError,
    InvalidStreamError,
    NewEvent,
)
from evsrc.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres

#: Nothing listens here: a store that tried to connect would fail with StoreUnavailableError.
NOWHERE = "postgresql://postgres@127.0.0.1:1/none"
BAD_NAMES = ["public\n", "public\n\n", "pg_catalog", "pg_x", "PG_X", "a-b", "1a", "", "a" * 64]


@pytest.mark.parametrize("schema", BAD_NAMES)
async def test_bad_schema_names_are_refused_before_connecting(schema: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        await PostgresEventStore.connect(NOWHERE, schema=schema, timeout=1)
    assert info.value.argument == "schema"


@pytest.mark.parametrize("name", ["events\n", "a-b", "1a", "", "x;drop"])
async def test_bad_table_names_are_refused(pg_store: PostgresEventStore, name: str) -> None:
    with pytest.raises(InvalidInputError):
        pg_store.table(name)


async def test_good_names_still_work(pg_dsn: str) -> None:
    async with await PostgresEventStore.connect(
        pg_dsn, schema="Tenant_42", min_size=1, max_size=1
    ) as store:
        await store.setup()
        assert store.table("checkpoints") == '"Tenant_42"."evsrc_checkpoints"'
        assert (await store.append("s", [NewEvent("e")])).last_seq == 1


@pytest.mark.parametrize("text", ["1:2\n", "1:2\r\n", "\n1:2", "١:2"])
def test_checkpoint_parse_is_strict(text: str) -> None:
    with pytest.raises(InvalidCheckpointError):
        Checkpoint.parse(text)
    assert Checkpoint.parse("1:2") == Checkpoint(1, 2)


LONE = "\ud800"


@pytest.mark.parametrize(
    ("stream", "event", "error"),
    [
        (f"s{LONE}", NewEvent("e"), InvalidStreamError),
        ("s", NewEvent(f"e{LONE}"), InvalidEventError),
        ("s", NewEvent("e", {"k": LONE}), InvalidEventError),
        ("s", NewEvent("e", {LONE: 1}), InvalidEventError),
        ("s", NewEvent("e", metadata={"m": [LONE]}), InvalidEventError),
        ("s", NewEvent("e", version=2**31), InvalidEventError),
        ("s", NewEvent("e", version=2**63), InvalidEventError),
    ],
)
async def test_lone_surrogates_and_huge_versions_are_refused_with_the_argument(
    pg_store: PostgresEventStore, stream: str, event: NewEvent, error: type[Exception]
) -> None:
    await pg_store.append("s", [NewEvent("first")])
    for call in (
        lambda: pg_store.append(stream, [event]),
        lambda: pg_store.append_expect(stream, 1, [event]),
    ):
        with pytest.raises(error) as info:
            await call()
        assert isinstance(info.value, InvalidInputError)
        assert info.value.argument is not None
    assert [e.type for e in await pg_store.read("s")] == ["first"]
    assert await pg_store.last_seq(f"s{LONE}".encode("utf-8", "replace").decode()) == 0


async def test_resend_with_other_data_is_event_id_reused(pg_store: PostgresEventStore) -> None:
    e = NewEvent("booked", {"actor": "ann"})
    committed = await pg_store.append_expect("b", 0, [e])
    other = NewEvent("booked", {"actor": "bob"}, id=e.id)
    for call in (
        lambda: pg_store.append_expect("b", 0, [other]),
        lambda: pg_store.append("b", [other]),
    ):
        with pytest.raises(EventIdReusedError) as info:
            await call()
        assert (info.value.event_id, info.value.stream, info.value.seq) == (e.id, "b", 1)
    assert [x.data for x in await pg_store.read("b")] == [{"actor": "ann"}]
    same: Any = NewEvent("booked", {"actor": "ann"}, id=e.id)
    assert await pg_store.append_expect("b", 0, [same]) == committed
