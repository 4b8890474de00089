"""After ``forget``, no byte of a person's fields is left in the database's live rows.

The test writes a person's events through ``ShreddingStore``, forgets them,
then reads every row of every table of the SQLite file (and of the PostgreSQL
schema, as text) and searches it for the plaintext.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from evsrc.keys import key_store_for
from evsrc.shredding import ShreddingStore
from tests.lifecycle_shred.conftest import Booked, Noted, registry

if TYPE_CHECKING:
    from pathlib import Path

    from evsrc.postgres import PostgresEventStore

PERSON = "zebulon.quux@example.org"
NOTE = "allergic-to-peanuts-7f3a"
OTHER = "yolanda.rex@example.org"


async def _write_and_forget(store: ShreddingStore) -> None:
    for i in range(5):
        await store.append(
            f"booking:{i}",
            [
                registry.encode(Booked(actor=PERSON, seat=i)),
                registry.encode(Noted(actor=PERSON, note=NOTE, nickname="zeb")),
                registry.encode(Booked(actor=OTHER, seat=i + 1)),
            ],
        )
    assert await store.forget(PERSON)


def _sqlite_rows(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out = bytearray()
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        out += value
                    elif value is not None:
                        out += str(value).encode()
                    out += b"\x00"
        return bytes(out)
    finally:
        conn.close()


async def test_sqlite_file_keeps_no_plaintext_of_a_forgotten_person(tmp_path: Path) -> None:
    from evsrc.sqlite import SqliteEventStore

    path = tmp_path / "shred.db"
    async with await SqliteEventStore.connect(path) as raw:
        await raw.setup()
        async with key_store_for(raw) as keys:
            await keys.setup()
            store = ShreddingStore(raw, keys, registry, owns_inner=False)
            await store.append("booking:x", [registry.encode(Booked(actor=PERSON, seat=9))])
            # Before forget the person is in the key table (the subject): the scan can find it.
            assert PERSON.encode() in _sqlite_rows(path)
            await _write_and_forget(store)
            rows = _sqlite_rows(path)
            for secret in (PERSON, NOTE, "zeb"):
                assert secret.encode() not in rows, secret
            # The other person is still a subject of the key table, and nowhere else.
            assert rows.count(OTHER.encode()) == 1
            # The other person still reads back; the forgotten one is redacted.
            actors = {e.data["actor"] async for e in store.read_all()}
            assert OTHER in actors and PERSON not in actors
    # With every connection closed the log is checkpointed: the file's bytes, freed
    # pages included, hold no plaintext either (secure_delete zeroed the key row).
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("shred"))
    assert PERSON.encode() not in on_disk
    assert NOTE.encode() not in on_disk


@pytest.mark.postgres
async def test_postgres_tables_keep_no_plaintext_of_a_forgotten_person(
    pg_store: PostgresEventStore,
) -> None:
    keys = key_store_for(pg_store)
    await keys.setup()
    store = ShreddingStore(pg_store, keys, registry, owns_inner=False)

    async def everything() -> str:
        async with pg_store.pool.acquire() as conn:
            tables = await conn.fetch(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS t "
                "FROM information_schema.tables WHERE table_schema = $1 "
                "AND table_type = 'BASE TABLE'",
                pg_store.schema,
            )
            texts = [
                await conn.fetchval(f"SELECT coalesce(string_agg(x::text, ''), '') FROM {r['t']} x")
                for r in tables
            ]
            return "".join(texts)

    await store.append("booking:x", [registry.encode(Booked(actor=PERSON, seat=9))])
    assert PERSON in await everything()
    await _write_and_forget(store)
    text = await everything()
    for secret in (PERSON, NOTE, "zeb"):
        assert secret not in text, secret
    assert text.count(OTHER) == 1  # the other person's subject row in the key table
    actors = {e.data["actor"] async for e in store.read_all()}
    assert OTHER in actors and PERSON not in actors
