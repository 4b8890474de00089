"""Benchmark databases: reachability, and fresh databases of our own.

The benchmark only ever creates and drops databases whose names start with
its prefix (``evsrc_bench`` by default); it never touches the contents of the
database named in ``--dsn``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import asyncpg

__all__ = ["admin_connect", "check_server", "db_dsn", "drop_db", "fresh_db", "server_version"]

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def db_dsn(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name`` instead."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def dsn_parts(dsn: str) -> dict[str, str]:
    """Host, port, user and password of ``dsn`` (for libraries that take them apart)."""
    parts = urlsplit(dsn)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": str(parts.port or 5432),
        "user": parts.username or "postgres",
        "password": parts.password or "",
    }


async def admin_connect(dsn: str) -> asyncpg.Connection:
    """A connection to the server's maintenance database (the one in ``dsn``)."""
    return await asyncpg.connect(dsn, timeout=5)


async def check_server(dsn: str) -> str | None:
    """None when PostgreSQL at ``dsn`` answers, else why not."""
    try:
        conn = await admin_connect(dsn)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL unreachable at {dsn}: {type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def server_version(dsn: str) -> str:
    """The server's ``version()``."""
    conn = await admin_connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def settle(conn: asyncpg.Connection) -> None:
    """Flush what earlier runs left for the server to write (``CHECKPOINT``).

    Every PostgreSQL repetition starts after one, whichever variant it is, so
    that none pays for writing out the dirty pages of the variant before it
    (the peer's table-locking writes, a conflict-heavy race). ``conn`` is an
    admin connection held for the whole case: no backend starts or exits
    next to a timed run.
    """
    await conn.execute("CHECKPOINT")


async def drop_db(dsn: str, name: str) -> None:
    """Drop our database ``name`` if it exists."""
    if not _NAME.match(name):
        raise ValueError(f"bad database name {name!r}")
    conn = await admin_connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def fresh_db(dsn: str, name: str) -> str:
    """Drop and recreate our database ``name``; return its DSN."""
    await drop_db(dsn, name)
    conn = await admin_connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return db_dsn(dsn, name)
