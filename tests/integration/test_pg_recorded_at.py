"""recorded_at reads back exactly: evsrc selects it as Unix seconds (float8) and converts it
itself inside 1900-2100, and takes asyncpg's timestamptz outside (evsrc/postgres/_rows.py).
Whatever the session's TimeZone and DateStyle, every read returns what asyncpg decodes from
the column: equal, a datetime in UTC."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from evsrc import NewEvent
from tests.pgfixtures import open_store

if TYPE_CHECKING:
    from evsrc.postgres import PostgresEventStore
    from evsrc.records import RecordedEvent

pytestmark = pytest.mark.postgres

EDGES = [
    "1970-01-01 00:00:00+00",
    "1969-12-31 23:59:59.999999+00",
    "1900-01-01 00:00:00+00",
    "1899-12-31 23:59:59.999999+00",
    "2099-12-31 23:59:59.999999+00",
    "2100-01-01 00:00:00+00",
    "2038-01-19 03:14:08.000001+00",
    "2000-02-29 12:00:00.5+00",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "1600-06-15 08:30:00.123456+00",
    "1901-01-01 00:00:00.000001+00",
    "2099-06-01 23:59:59.999999+00",
]


def _random_instants(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    start = datetime(1900, 1, 1, tzinfo=UTC)
    span = int((datetime(2100, 1, 1, tzinfo=UTC) - start).total_seconds() * 1_000_000)
    return [(start + timedelta(microseconds=rnd.randrange(span))).isoformat() for _ in range(n)]


async def _stamp(store: PostgresEventStore, stream: str, instants: list[str]) -> list[datetime]:
    """Append one event per instant, set their recorded_at; what asyncpg decodes, by seq."""
    await store.append(stream, [NewEvent("e", {"i": i}) for i in range(len(instants))])
    events = store.table("events")
    async with store.pool.acquire() as conn:
        await conn.execute(
            f"UPDATE {events} e SET recorded_at = v.t::timestamptz "
            "FROM unnest($2::text[]) WITH ORDINALITY AS v (t, seq) "
            "WHERE e.stream = $1 AND e.seq = v.seq",
            stream,
            instants,
        )
        rows = await conn.fetch(
            f"SELECT recorded_at FROM {events} WHERE stream = $1 ORDER BY seq", stream
        )
    return [r[0] for r in rows]


def _check(got: list[RecordedEvent], want: list[datetime]) -> None:
    assert [e.recorded_at for e in got] == want
    for e, w in zip(got, want, strict=True):
        assert type(e.recorded_at) is type(w)
        assert e.recorded_at.tzinfo is w.tzinfo  # datetime.UTC, as asyncpg gives it
        assert e.recorded_at.isoformat() == w.isoformat()


@pytest.mark.parametrize(
    "session",
    [{}, {"TimeZone": "Asia/Kathmandu", "DateStyle": "SQL, DMY"}, {"TimeZone": "America/Nome"}],
)
async def test_recorded_at_reads_back_as_asyncpg_decodes_it(
    pg_dsn: str, session: dict[str, str]
) -> None:
    async with open_store(pg_dsn, server_settings=session) as store:
        inside = _random_instants(3000, seed=16)
        want_inside = await _stamp(store, "inside", inside)  # the converted path only
        want_mixed = await _stamp(store, "mixed", EDGES + inside[:50])  # both paths on one page
        assert all(w.tzinfo is UTC for w in want_inside)

        _check(await store.read("inside"), want_inside)
        _check(await store.read("mixed"), want_mixed)
        _check(await store.read("mixed", backwards=True), want_mixed[::-1])
        _check(await store.read("mixed", after=3, limit=4), want_mixed[3:7])
        everything = [e async for e in store.read_all()]
        by_stream = {"inside": want_inside, "mixed": want_mixed}
        for name, want in by_stream.items():
            _check([e for e in everything if e.stream == name], want)
        _check([e async for e in store.read_all(stream_prefix="mix")], want_mixed)
        _check([e async for e in store.read_all(types=["e"])][: len(want_inside)], want_inside)


async def test_infinite_recorded_at_reads_as_asyncpg_decodes_it(
    pg_store: PostgresEventStore,
) -> None:
    want = await _stamp(pg_store, "inf", ["infinity", "-infinity", "2026-11-29 12:00:00+00"])
    _check(await pg_store.read("inf"), want)
    _check([e async for e in pg_store.read_all()], want)


async def test_now_is_recorded(pg_store: PostgresEventStore) -> None:
    before = datetime.now(UTC)
    await pg_store.append("now", [NewEvent("e"), NewEvent("e")])
    async with pg_store.pool.acquire() as conn:
        stored = await conn.fetchval(
            f"SELECT recorded_at FROM {pg_store.table('events')} WHERE stream = 'now' AND seq = 2"
        )
    got = await pg_store.read("now")
    assert got[1].recorded_at == stored == got[0].recorded_at  # one transaction, one now()
    assert abs(got[0].recorded_at - before) < timedelta(minutes=5)
