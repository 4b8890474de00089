"""Schema creation, versioning and migration on a real server."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from evsrc import InvalidInputError, NewEvent, SchemaError
from evsrc.postgres import PostgresEventStore, _sql
from tests.pgfixtures import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.postgres

CATALOG = """
SELECT 'column' AS kind, table_name || '.' || column_name AS name,
       concat_ws(' ', data_type, is_nullable, column_default) AS def
FROM information_schema.columns WHERE table_schema = $1
UNION ALL
SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = $1
UNION ALL
SELECT 'constraint', c.conname, pg_get_constraintdef(c.oid)
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = $1
UNION ALL
SELECT 'function', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
UNION ALL
SELECT 'sequence', sequencename, concat_ws(' ', data_type, start_value, increment_by)
FROM pg_sequences WHERE schemaname = $1
UNION ALL
SELECT 'table', c.relname, c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
"""


async def catalog(conn: asyncpg.Connection, schema: str) -> dict[tuple[str, str], str]:
    rows = await conn.fetch(CATALOG, schema)
    pattern = re.compile(rf'"?\b{re.escape(schema)}\b"?')
    return {(r["kind"], r["name"]): pattern.sub("<schema>", r["def"]) for r in rows}


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(pg_dsn)
    try:
        yield c
    finally:
        await c.close()


async def test_every_migration_in_order_yields_schema_sql(pg_dsn: str, conn: Any) -> None:
    # Road 1: a fresh schema from schema.sql (setup() on an empty schema).
    async with open_store(pg_dsn, schema="road_schema_sql") as store:
        await store.setup()
    # Road 2: every migration, one release at a time.
    await conn.execute('CREATE SCHEMA "road_migrations"')
    for n, sql in _sql.migrations('"road_migrations"', 0):
        await conn.execute(sql)
        await conn.execute(
            'INSERT INTO "road_migrations".evsrc_schema_version (version) VALUES ($1)', n
        )
    fresh = await catalog(conn, "road_schema_sql")
    migrated = await catalog(conn, "road_migrations")
    assert fresh, "setup() created nothing"
    assert set(fresh) == set(migrated)
    for key in fresh:
        assert fresh[key] == migrated[key], key
    versions = "SELECT array_agg(version ORDER BY version) FROM {}.evsrc_schema_version"
    assert await conn.fetchval(versions.format('"road_schema_sql"')) == await conn.fetchval(
        versions.format("road_migrations")
    )


async def test_setup_migrates_an_older_schema_and_keeps_its_events(pg_dsn: str, conn: Any) -> None:
    assert _sql.latest_version() >= 2
    await conn.execute('CREATE SCHEMA "old"')
    (n, first), *_ = _sql.migrations('"old"', 0)
    await conn.execute(first)
    await conn.execute('INSERT INTO "old".evsrc_schema_version (version) VALUES ($1)', n)
    # An event written by the older release, straight into its table.
    await conn.execute(
        'INSERT INTO "old".evsrc_events (commit, stream, seq, id, type, version, data, metadata)'
        " VALUES (pg_current_xact_id(), 's', 1, gen_random_uuid(), 't', 1, '{\"v\": 1}', '{}')"
    )
    async with open_store(pg_dsn, schema="old") as store:
        assert await store.schema_version() == 1
        await store.setup()
        assert await store.schema_version() == _sql.latest_version()
        r = await store.append_expect("s", 1, [NewEvent("t", {"v": 2})])
        assert (r.first_seq, r.last_seq) == (2, 2)  # type: ignore[union-attr]
        assert [e.data["v"] for e in await store.read("s")] == [1, 2]
        assert [e.data["v"] async for e in store.read_all()] == [1, 2]


async def test_setup_is_idempotent_and_concurrent(pg_dsn: str) -> None:
    import anyio

    async with open_store(pg_dsn, schema="twice", max_size=4) as store:
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(store.setup)
        await store.append("s", [NewEvent("t")])
        await store.setup()
        assert await store.last_seq("s") == 1
        assert await store.schema_version() == _sql.latest_version()


async def test_newer_schema_is_refused(pg_dsn: str, conn: Any) -> None:
    await conn.execute(
        "INSERT INTO public.evsrc_schema_version (version) VALUES ($1)", _sql.latest_version() + 1
    )
    async with open_store(pg_dsn) as store:
        with pytest.raises(SchemaError, match="newer"):
            await store.setup()


async def test_missing_schema_is_a_schema_error(pg_dsn: str) -> None:
    async with open_store(pg_dsn, schema="never_set_up") as store:
        assert await store.schema_version() == 0
        with pytest.raises(SchemaError):
            await store.append("s", [NewEvent("t")])
        with pytest.raises(SchemaError):
            await store.read("s")


async def test_stores_in_two_schemas_are_separate(pg_dsn: str) -> None:
    async with (
        open_store(pg_dsn, schema="tenant_a") as a,
        open_store(pg_dsn, schema="tenant_b") as b,
    ):
        await a.setup()
        await b.setup()
        await a.append("s", [NewEvent("t", {"who": "a"})])
        assert await b.read("s") == []
        assert [e.data async for e in a.read_all()] == [{"who": "a"}]
        assert a.table("events") == '"tenant_a"."evsrc_events"'
        assert b.table("evsrc_events") == '"tenant_b"."evsrc_events"'
        assert (a.schema, b.schema) == ("tenant_a", "tenant_b")
        assert isinstance(a.pool, asyncpg.Pool)


@pytest.mark.parametrize(
    "schema", ["", "1abc", 'a"b', "a b", "public; DROP TABLE x", "x" * 64, None, 3, "é"]
)
async def test_schema_name_must_be_an_identifier(pg_dsn: str, schema: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        await PostgresEventStore.connect(pg_dsn, schema=schema)
    assert info.value.argument == "schema"


async def test_table_name_must_be_an_identifier(pg_store: PostgresEventStore) -> None:
    assert pg_store.table("projection_state") == '"public"."evsrc_projection_state"'
    with pytest.raises(InvalidInputError):
        pg_store.table('x"; --')
