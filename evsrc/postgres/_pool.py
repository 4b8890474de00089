"""The store's asyncpg pool: how it is opened, how connections go back, how it closes.

docs/postgres.md, "Server settings", tells why every connection starts at
READ COMMITTED and why the pool skips asyncpg's per-release reset.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import anyio
import asyncpg

from evsrc.postgres import _errors

__all__ = ["CLOSE_GRACE", "close", "listen_options", "open_pool", "pool_options", "release"]

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
