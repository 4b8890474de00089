"""PostgreSQL fixtures: a template database once per session, a fresh clone per test.

Loaded as a pytest plugin (``pytest_plugins = ["tests.pgfixtures"]``). The
server comes from ``EVSRC_TEST_DSN`` (default: the local trust-auth server).
If it cannot be reached the PostgreSQL tests are skipped with a hint — unless
``CI=true``, where that is an error: CI must never pass by skipping.

``pg_dsn`` is a *sync* fixture (it drives asyncpg on a worker thread with its
own event loop), so an async fixture may call ``request.getfixturevalue("pg_dsn")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from evsrc.postgres import PostgresEventStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine, Iterator

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
#: Pool size of test stores: small, the server is shared.
TEST_POOL = {"min_size": 1, "max_size": 8}

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgfixtures")


def admin_dsn() -> str:
    """The DSN of the server's maintenance database (where databases are created)."""
    return os.environ.get("EVSRC_TEST_DSN") or DEFAULT_DSN


def dsn_for(database: str) -> str:
    """``admin_dsn()`` pointed at ``database``."""
    parts = urlsplit(admin_dsn())
    return urlunsplit(parts._replace(path="/" + database))


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion on a private worker thread (safe inside a running loop)."""
    return _executor.submit(asyncio.run, coro).result()


async def _admin(sql: str, dsn: str) -> None:
    # The DSN is read on the calling thread, when the work is submitted: the
    # worker thread may run it later, when a test has patched the environment.
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class _Template:
    """The session's template database: created lazily, dropped at session end."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.error: str | None = None
        self.lock = threading.Lock()

    def get(self) -> str:
        with self.lock:
            if self.error is not None:
                _unreachable(self.error)
            if self.name is None:
                try:
                    run_sync(_probe())
                except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                    self.error = f"{type(exc).__name__}: {exc}"
                    _unreachable(self.error)
                name = f"evsrc_tpl_{uuid.uuid4().hex[:12]}"
                run_sync(_admin(f'CREATE DATABASE "{name}"', admin_dsn()))
                run_sync(_setup(dsn_for(name)))
                self.name = name
            return self.name

    def drop(self) -> None:
        if self.name is not None:
            run_sync(_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)', admin_dsn()))
            self.name = None


async def _probe() -> None:
    conn = await asyncpg.connect(admin_dsn(), timeout=3)
    await conn.close()


async def _setup(dsn: str) -> None:
    async with await PostgresEventStore.connect(dsn, min_size=1, max_size=1) as store:
        await store.setup()


def _redacted(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def _unreachable(reason: str) -> None:
    where = _redacted(admin_dsn())
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL at {where} is unreachable in CI ({reason})", pytrace=False)
    pytest.skip(
        f"PostgreSQL at {where} is unreachable ({reason}); start PostgreSQL or set "
        "EVSRC_TEST_DSN=postgresql://user@host:port/db to run the PostgreSQL tests"
    )


_template = _Template()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the spare and template databases when the session ends."""
    while _spare:
        with contextlib.suppress(Exception):
            drop_database(_spare.pop().result())
    _template.drop()
    _executor.shutdown(wait=True)


# One database is cloned ahead, on the worker thread, while the current test
# runs; drops run there too, so neither stands in a test's way.
_spare: list[Future[str]] = []


def _clone_later(template: str) -> Future[str]:
    dsn = admin_dsn()

    async def clone() -> str:
        name = f"evsrc_test_{uuid.uuid4().hex[:12]}"
        for attempt in range(20):
            try:
                await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"', dsn)
                return name
            except (
                asyncpg.ObjectInUseError,
                asyncpg.TooManyConnectionsError,
                asyncpg.CannotConnectNowError,
                asyncpg.AdminShutdownError,
                asyncpg.ConnectionDoesNotExistError,
                OSError,
            ):
                # A shared server: someone briefly touched the template, the
                # connection slots are full, or a test restarted the server.
                # Try again shortly.
                await asyncio.sleep(0.05 * (attempt + 1))
        await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"', dsn)
        return name

    return _executor.submit(asyncio.run, clone())


def create_database() -> str:
    """Clone the template into a new, empty, set-up database; return its name."""
    template = _template.get()
    name = None
    if _spare:
        try:
            name = _spare.pop().result()
        except Exception:
            # The clone made ahead failed in the background (a test restarted
            # or killed the server's backends meanwhile): make one now.
            name = None
    if name is None:
        name = _clone_later(template).result()
    _spare.append(_clone_later(template))
    return name


def drop_database(name: str) -> None:
    """Drop a database made by :func:`create_database` (in the background)."""
    sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    _executor.submit(asyncio.run, _admin(sql, admin_dsn()))


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A DSN to a fresh database with the evsrc schema set up; dropped after the test."""
    name = create_database()
    try:
        yield dsn_for(name)
    finally:
        drop_database(name)


async def cancel_requests_sent() -> None:
    """Wait for asyncpg's cancel requests (``Connection._cancel`` tasks, each on a connection
    of its own) to finish, so none is left open when the test's event loop ends: a task the
    loop never finished is reported by the garbage collector in whichever test runs next."""
    for _ in range(500):
        pending = [
            t
            for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "__qualname__", "") == "Connection._cancel"
        ]
        if not pending:
            return
        await asyncio.wait(pending, timeout=0.01)
    raise AssertionError("asyncpg's cancel request never finished")


@asynccontextmanager
async def open_store(dsn: str, **options: Any) -> AsyncIterator[PostgresEventStore]:
    """A ``PostgresEventStore`` on ``dsn`` with the small test pool, closed on exit (after any
    cancel request a cancelled query sent has finished)."""
    try:
        async with await PostgresEventStore.connect(dsn, **{**TEST_POOL, **options}) as store:
            yield store
    finally:
        await cancel_requests_sent()


@pytest.fixture
async def pg_store(pg_dsn: str) -> AsyncIterator[PostgresEventStore]:
    """A fresh, empty, set-up ``PostgresEventStore`` in its own database."""
    async with open_store(pg_dsn) as store:
        yield store


async def postgres_any_store(request: pytest.FixtureRequest) -> AsyncIterator[PostgresEventStore]:
    """The "postgres" case of ``any_store`` (tests/conftest.py)."""
    dsn: str = request.getfixturevalue("pg_dsn")
    async with open_store(dsn) as store:
        yield store
