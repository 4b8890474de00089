"""Filtered global reads on PostgreSQL touch about what they return (EXPLAIN ANALYZE)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from evsrc import NewEvent
from evsrc.postgres import _sql

if TYPE_CHECKING:
    from evsrc.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres

TOTAL = 20_000


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


async def explain(store: PostgresEventStore, name: str, *args: Any) -> list[dict[str, Any]]:
    """The executed plan of the named query, as a prepared statement gets it."""
    return await explain_sql(store, _sql.queries('"public"')[name], *args)


async def explain_sql(
    store: PostgresEventStore, query: str, *args: Any, settings: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The nodes of ``EXPLAIN ANALYZE`` of ``query`` (generic plan), in its own transaction."""
    async with store.pool.acquire() as conn, conn.transaction():
        # The generic plan, as a prepared statement gets after a few runs.
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for setting in settings:
            await conn.execute(f"SET LOCAL {setting}")
        stmt = await conn.prepare(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}")
        text = await stmt.fetchval(*args)
    plan = json.loads(text)[0]["Plan"]
    return _nodes(plan)


def touched(nodes: list[dict[str, Any]]) -> int:
    """Rows read from the table by the plan's scans (returned plus filtered out)."""
    n = 0
    for node in nodes:
        if node["Node Type"] in {"Seq Scan", "Index Scan", "Bitmap Heap Scan"}:
            loops = node.get("Actual Loops", 1)
            n += (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * loops
            n += node.get("Rows Removed by Index Recheck", 0)
    return n


async def test_reading_one_percent_touches_about_one_percent(pg_store: PostgresEventStore) -> None:
    for b in range(TOTAL // 500):
        events = [NewEvent("rare" if i % 100 == 0 else "common", {"i": i}) for i in range(500)]
        await pg_store.append(f"rare:{b}" if b % 10 == 0 else f"common:{b}", events[:50])
        await pg_store.append(f"common:x{b}", events[50:])
    await pg_store.pool.execute("ANALYZE evsrc_events")
    total = await pg_store.pool.fetchval("SELECT count(*) FROM evsrc_events")
    end = await pg_store.pool.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())")
    rare = await pg_store.pool.fetchval("SELECT count(*) FROM evsrc_events WHERE type = 'rare'")
    assert rare * 50 <= total  # about 1 %

    # read_all_types runs evsrc_read_type once per type: explain its body, with
    # the function's settings.
    body = await pg_store.pool.fetchval(
        "SELECT prosrc FROM pg_proc WHERE proname = 'evsrc_read_type'"
    )
    params = ("p_type text", "p_commit xid8", "p_position bigint", "p_end xid8", "p_prefix text")
    for k, param in enumerate((*params, "p_limit bigint")):
        name, kind = param.split()
        body = re.sub(rf"\b{name}\b", f"${k + 1}::{kind}", body)
    by_type = await explain_sql(
        pg_store,
        body,
        "rare",
        0,
        0,
        end,
        None,
        500,
        settings=("enable_sort = off", "enable_bitmapscan = off"),
    )
    assert not any(n["Node Type"] == "Seq Scan" for n in by_type)
    assert any(n.get("Index Name") == "evsrc_events_type_idx" for n in by_type)
    assert touched(by_type) <= rare * 1.1
    merged = await explain(pg_store, "read_all_types", 0, 0, 500, end, ["rare"], None)
    scans = [n for n in merged if n["Node Type"] == "Function Scan"]
    assert [n["Actual Rows"] for n in scans if "evsrc_read_type" in n.get("Function Name", "")] == [
        rare
    ]

    prefixed = await pg_store.pool.fetchval(
        "SELECT count(*) FROM evsrc_events WHERE stream LIKE 'rare:%'"
    )
    assert prefixed * 40 <= total
    by_prefix = await explain(pg_store, "read_all_prefix", 0, 0, 500, end, "rare:", "rare;")
    assert not any(n["Node Type"] == "Seq Scan" for n in by_prefix)
    assert any(n.get("Index Name") == "evsrc_events_stream_idx" for n in by_prefix)
    assert touched(by_prefix) <= prefixed * 1.1

    # And the reads return exactly those events.
    assert len([e async for e in pg_store.read_all(types=["rare"])]) == rare
    assert len([e async for e in pg_store.read_all(stream_prefix="rare:")]) == prefixed
