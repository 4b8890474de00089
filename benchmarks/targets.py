"""What the scenarios drive: evsrc's stores, and the baselines beside them.

- :class:`DictStore` — the in-memory limit: a minimal dict-of-lists store with
  the same optimistic check (async method; last seq == expected; append).
- :class:`RawPg` — the PostgreSQL limit: a bare asyncpg pool running the
  *evsrc backend's own SQL*, read from the package's ``sql/queries.sql``, with
  arguments built before the clock starts and no library code around it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from benchmarks.harness import NotAvailable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from evsrc.records import NewEvent
    from evsrc.store import EventStore

__all__ = [
    "POOL_CAP",
    "DictStore",
    "RawPg",
    "event_args",
    "full_rows",
    "open_evsrc_pg",
    "pg_page_size",
    "pg_queries",
    "require_evsrc_pg",
]

_dumps = orjson.dumps

#: Largest connection pool any variant opens. The PostgreSQL server is shared
#: (max_connections=100) with engineers running tests; every variant gets the
#: same cap, and only one variant's pool is open at a time.
POOL_CAP = 32


class DictStore:
    """The in-memory limit: a dict of lists doing what the contract demands, at minimum.

    Per append the same optimistic check (the stream's length is ``expected``);
    per event a row with its id (the ``NewEvent``'s own fresh uuid4, as evsrc
    takes it from the caller), its seq, its global position and a copy of its
    data and metadata (JSON text by orjson: the cheapest deep copy of JSON values;
    kept as ``str``, since holding orjson's ``bytes`` costs the allocator more), in
    the stream's list and the global log. The row holds only atoms (the id as
    its int), so the garbage collector stops tracking it, as evsrc's rows.
    Nothing else: no argument checks, no id index, no timestamps, no
    ``Committed`` value.
    """

    def __init__(self) -> None:
        self.streams: dict[str, list[Any]] = {}
        self.log: list[Any] = []

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> tuple[bool, int]:
        """Append iff the stream's last seq is ``expected``: (committed, last seq)."""
        rows = self.streams.get(stream)
        if rows is None:
            rows = self.streams[stream] = []
        if len(rows) != expected:
            return False, len(rows)
        log = self.log
        seq = expected
        position = len(log)
        dumps = _dumps
        for e in events:
            seq += 1
            position += 1
            row = (
                stream,
                seq,
                position,
                e.id.int,
                e.type,
                dumps(e.data).decode(),
                dumps(e.metadata).decode(),
            )
            rows.append(row)
            log.append(row)
        return True, seq

    async def read(self, stream: str, after: int = 0) -> list[Any]:
        """The stream's events after ``after`` (a copy of the list)."""
        return self.streams.get(stream, [])[after:]

    async def read_all(self) -> AsyncIterator[Any]:
        """Every event in append order."""
        for ev in self.log:
            yield ev


def require_evsrc_pg() -> Any:
    """The ``PostgresEventStore`` class, or NotAvailable while it has not landed."""
    try:
        from evsrc.postgres import PostgresEventStore
    except ImportError as exc:
        raise NotAvailable(f"evsrc.postgres not available ({exc})") from exc
    return PostgresEventStore


def pg_page_size() -> int:
    """The PostgreSQL backend's ``read_all`` page size (500 when it does not say)."""
    try:
        from evsrc.postgres import store as pgstore
    except ImportError:
        return 500
    return int(getattr(pgstore, "_PAGE", 500))


async def open_evsrc_pg(dsn: str, pool_size: int, **options: Any) -> EventStore:
    """An evsrc PostgreSQL store on ``dsn`` with a pool of ``pool_size`` connections.

    Everything else is evsrc's default unless ``options`` says otherwise (used
    only by variants labelled as diagnostics).
    """
    cls = require_evsrc_pg()
    store: EventStore = await cls.connect(dsn, min_size=pool_size, max_size=pool_size, **options)
    return store


def pg_queries() -> dict[str, str]:
    """The evsrc backend's named queries (``sql/queries.sql``), by name."""
    from importlib import resources

    try:
        text = resources.files("evsrc.postgres").joinpath("sql/queries.sql").read_text()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise NotAvailable(f"evsrc.postgres SQL not available ({exc})") from exc
    out: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        lines = [ln for ln in body.splitlines() if not ln.lstrip().startswith("--")]
        out[name.strip()] = "\n".join(lines).strip().rstrip(";")
    return out


def event_args(events: Sequence[NewEvent]) -> tuple[list[Any], ...]:
    """The append statement's array arguments for ``events`` (ids, types, versions, data, metadata).

    Built with the standard library's json, before the clock starts: the raw
    baseline times the round trip and the database's work only.
    """
    import json

    dumps = json.JSONEncoder(separators=(",", ":")).encode
    return (
        [e.id for e in events],
        [e.type for e in events],
        [e.version for e in events],
        [dumps(e.data) for e in events],
        [dumps(e.metadata) if e.metadata else "{}" for e in events],
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Pool reset hook that sends nothing (asyncpg still rolls back an open transaction)."""


#: How evsrc's read statements select ``recorded_at``: its Unix time as float8, and
#: the timestamptz itself only outside 1900-2100 (evsrc/postgres/_rows.py converts).
_RECORDED_AT = re.compile(
    r"date_part\('epoch', e\.recorded_at\),\s*CASE WHEN e\.recorded_at .*? END", re.S
)


def full_rows(sql: str) -> str:
    """``sql`` selecting ``recorded_at`` as the timestamptz column, decoded by asyncpg.

    The limit fetches the same rows as evsrc, every column decoded by asyncpg
    (``recorded_at`` a ``datetime``, as evsrc returns it), not evsrc's cheaper
    form of that column, which would leave the limit's rows short of a datetime.
    """
    return _RECORDED_AT.sub("e.recorded_at", sql)


class RawPg:
    """A bare asyncpg pool running evsrc's SQL: the PostgreSQL limit.

    Read statements return full rows (:func:`full_rows`): today's column layout,
    ``recorded_at`` decoded by asyncpg.
    """

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        q = pg_queries()
        self.sql = {k: full_rows(v.replace("{schema}", schema)) for k, v in q.items()}

    @classmethod
    async def open(cls, dsn: str, pool_size: int, schema: str) -> RawPg:
        """A pool of ``pool_size`` connections on ``dsn``."""
        q = pg_queries()  # NotAvailable before opening anything
        del q
        # Only the statements evsrc sends: no reset query on release (asyncpg's
        # default pool adds one round trip per call; evsrc's pool does not).
        pool = await asyncpg.create_pool(
            dsn, min_size=pool_size, max_size=pool_size, reset=_no_reset
        )
        assert pool is not None
        return cls(pool, schema)

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()
