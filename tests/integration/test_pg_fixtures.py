"""The PostgreSQL fixtures' reachability policy: skip with a hint locally, fail in CI."""

from __future__ import annotations

from concurrent.futures import Future

import asyncpg
import pytest

from tests import pgfixtures


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> pgfixtures._Template:
    monkeypatch.setenv("EVSRC_TEST_DSN", "postgresql://postgres@127.0.0.1:1/postgres")
    return pgfixtures._Template()


def test_unreachable_server_skips_with_a_hint(
    unreachable: pgfixtures._Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="start PostgreSQL or set EVSRC_TEST_DSN"):
        unreachable.get()
    with pytest.raises(pytest.skip.Exception):  # remembered, not probed again
        unreachable.get()


def test_unreachable_server_fails_in_ci(
    unreachable: pgfixtures._Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="unreachable in CI"):
        unreachable.get()


def test_messages_do_not_show_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVSRC_TEST_DSN", "postgresql://app:s3cret@127.0.0.1:1/postgres")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        pgfixtures._Template().get()
    assert "s3cret" not in str(info.value)
    assert "app:***@127.0.0.1:1" in str(info.value)


def test_a_failed_clone_ahead_is_replaced() -> None:
    """A spare database whose background clone died (server restarted) is made again."""
    pgfixtures._template.get()  # skips or fails (CI) when the server is unreachable
    saved = list(pgfixtures._spare)
    pgfixtures._spare.clear()
    failed: Future[str] = Future()
    failed.set_exception(asyncpg.ConnectionDoesNotExistError("killed by a restart"))
    pgfixtures._spare.append(failed)
    name = pgfixtures.create_database()
    try:

        async def tables() -> int:
            conn = await asyncpg.connect(pgfixtures.dsn_for(name))
            try:
                n: int = await conn.fetchval(
                    "SELECT count(*) FROM pg_tables WHERE tablename = 'evsrc_events'"
                )
                return n
            finally:
                await conn.close()

        assert pgfixtures.run_sync(tables()) == 1
    finally:
        pgfixtures.drop_database(name)
        pgfixtures._spare.extend(saved)
