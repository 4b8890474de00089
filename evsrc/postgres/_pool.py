"""The store's asyncpg pool: how it is opened, how connections go back, how it closes.

docs/postgres.md, "Server settings", tells why every connection starts at
READ COMMITTED and why the pool skips asyncpg's per-release reset.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import anyio
import asyncpg

from evsrc.postgres import _errors

__all__ = [
    "CLOSE_GRACE",
    "HOLD",
    "Held",
    "close",
    "listen_options",
    "open_pool",
    "pool_options",
    "release",
]

#: Seconds close() waits for busy connections before terminating them.
CLOSE_GRACE: Final = 10.0
_log = logging.getLogger("evsrc.postgres")
#: Session settings every pooled connection starts with (startup parameters, no round trip).
_SESSION: Final = {"default_transaction_isolation": "read committed"}
_POOL_ONLY_OPTIONS: Final = frozenset(
    {
        "min_size",
        "max_size",
        "max_queries",
        "max_inactive_connection_lifetime",
        "setup",
        "init",
        "reset",
        "loop",
        "connection_class",
    }
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to undo beyond asyncpg's own rollback (see connect())."""


def pool_options(pool_options: dict[str, Any]) -> dict[str, Any]:
    """``asyncpg.create_pool`` arguments: the store's defaults, the caller's, the session."""
    options: dict[str, Any] = {"min_size": 1, "max_size": 10, "reset": _keep_session}
    options.update(pool_options)
    # The isolation level the append needs, whatever the database's or role's
    # default: a startup parameter, so it costs no round trip (docs/postgres.md,
    # "Global order" and "Server settings").
    options["server_settings"] = {**(options.get("server_settings") or {}), **_SESSION}
    return options


def listen_options(options: dict[str, Any]) -> dict[str, Any]:
    """Of the pool's arguments, those a single (LISTEN) connection takes."""
    return {k: v for k, v in options.items() if k not in _POOL_ONLY_OPTIONS}


async def open_pool(dsn: str | None, options: dict[str, Any]) -> asyncpg.Pool:
    """A pool on ``dsn``; driver errors mapped (ConfigurationError, StoreUnavailableError)."""
    with _errors.mapped(connecting=dsn or "", only=_errors.DRIVER_ERRORS):
        return await asyncpg.create_pool(dsn, **options)


async def release(pool: asyncpg.Pool, conn: asyncpg.pool.PoolConnectionProxy) -> None:
    """Give ``conn`` back; a connection that died after answering is dropped, not reported.

    asyncpg terminates a connection whose reset fails and opens a new one on
    demand, so the pool recovers by itself; the caller's result stands.
    """
    try:
        await pool.release(conn)
    except Exception as exc:
        _log.debug("dropped a broken connection on release: %r", exc)


async def close(pool: asyncpg.Pool, grace: float = CLOSE_GRACE) -> None:
    """Close ``pool``: queries in flight finish; a connection busy after ``grace`` is cut.

    (Say, an append queued on a lock held elsewhere.)
    """
    try:
        with anyio.fail_after(grace):
            await pool.close()
    except Exception:
        pool.terminate()


#: How long a connection that answered cleanly stays with the store before it
#: goes back to the pool, if no statement of the store takes it first (seconds).
HOLD: Final = 0.001


class Held:
    """The store's single statements on pooled connections, each kept for the next one.

    asyncpg's ``Pool.release`` runs a reset and a shielded task per call: in
    CPU, about as much as the rest of an append (docs/postgres.md, "Connecting").
    A connection whose statement answered cleanly is instead kept here and
    taken by the store's next statement; whatever is still kept when the
    event loop has had ``HOLD`` seconds to reuse it goes back to the pool.
    A connection is never kept while anyone waits for the pool (so the store
    takes no more than its turn), nor after an error or a cancellation (those
    go back through ``release``, which resets or replaces the connection).
    """

    __slots__ = ("_closed", "_idle", "_pool", "_releasing", "_timer", "_waiters")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._timer: asyncio.TimerHandle | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._waiters: Any = None  # found at the first keep() (a pool is set up by then)

    async def acquire(self) -> Any:
        """A kept connection, or one from the pool."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            try:
                if not conn.is_closed():
                    return conn
            except asyncpg.InterfaceError:
                continue  # it ended, and asyncpg took it back itself
            await release(self._pool, conn)
        return await self._pool.acquire()

    def keep(self, conn: Any) -> bool:
        """Keep ``conn`` (its statement answered) for the next statement, if nobody waits.

        ``False``: the caller gives it back (:meth:`release`).
        """
        waiters = self._waiters
        if waiters is None:
            # Who waits for a connection: the pool's queue of getters (asyncio.Queue's
            # own attribute). Without it (another asyncpg), nothing is ever kept.
            waiters = self._waiters = getattr(getattr(self._pool, "_queue", None), "_getters", None)
            if waiters is None:
                return False
        if waiters or self._closed:
            return False
        self._idle.append(conn)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(HOLD, self._flush)
        return True

    async def release(self, conn: Any) -> None:
        """Give back ``conn`` after an error or a cancellation (asyncpg resets or drops it)."""
        await release(self._pool, conn)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """``Pool.fetch``, on a kept connection when there is one."""
        conn = await self.acquire()
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        except BaseException:
            await release(self._pool, conn)
            raise
        if not self.keep(conn):
            await release(self._pool, conn)
        return rows

    def _flush(self) -> None:
        self._timer = None
        if self._idle:
            conns = self._idle[:]
            self._idle.clear()
            task = asyncio.get_running_loop().create_task(self._release_all(conns))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    async def _release_all(self, conns: list[Any]) -> None:
        for conn in conns:
            await release(self._pool, conn)

    async def close(self) -> None:
        """Give every kept connection back, and wait for those on their way.

        Statements still in flight give theirs back when they end.
        """
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conns = self._idle[:]
        self._idle.clear()
        await self._release_all(conns)
        # Once: nothing is kept any more, so no release task starts after this.
        # (Not a loop on the set: a done task leaves it in a callback, and
        # gather() over done tasks may return without letting callbacks run.)
        if self._releasing:
            await asyncio.gather(*list(self._releasing), return_exceptions=True)
