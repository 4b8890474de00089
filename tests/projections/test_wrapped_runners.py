"""The exactly-once runners read through a store wrapper and commit on the backend under it.

A wrapper (telemetry, personal-data encryption, compression) changes what a
read returns; the PostgreSQL and SQLite runners must hand the projector what
the wrapper returns, while their transactions and checkpoints stay on the
backend. A store with no such backend under it is a ConfigurationError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from evsrc import ConfigurationError, NewEvent, Projector, RecordedEvent
from evsrc.memory import InMemoryEventStore
from evsrc.postgres.projection import PostgresProjectionRunner
from evsrc.sqlite import SqliteEventStore, SqliteProjectionRunner
from evsrc.store import DelegatingStore
from tests.pgfixtures import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


def _opened(e: RecordedEvent) -> RecordedEvent:
    return e._replace(data={**e.data, "opened": True})


class Opening(DelegatingStore):
    """Marks every event it reads, as a decrypting wrapper would open its sealed fields."""

    async def _marked(self, source: AsyncIterator[RecordedEvent]) -> AsyncIterator[RecordedEvent]:
        async for e in source:
            yield _opened(e)

    def read_all(self, *args: Any, **kwargs: Any) -> AsyncIterator[RecordedEvent]:
        return self._marked(self.inner.read_all(*args, **kwargs))

    def subscribe(self, *args: Any, **kwargs: Any) -> AsyncIterator[RecordedEvent]:
        return self._marked(self.inner.subscribe(*args, **kwargs))


class Seen(Projector):
    name = "seen"

    def __init__(self) -> None:
        self.opened: list[bool] = []

    def wants(self, recorded: RecordedEvent) -> bool:
        return True

    async def handle(self, recorded: RecordedEvent, *context: Any) -> None:
        assert len(context) == 1  # the backend's transaction connection
        self.opened.append(recorded.data.get("opened") is True)


async def _run(runner: Any, projector: Seen, n: int) -> None:
    await runner.setup()
    assert await runner.catch_up() == n
    assert projector.opened == [True] * n


async def test_sqlite_runner_reads_through_the_wrapper(tmp_path: Path) -> None:
    async with await SqliteEventStore.connect(tmp_path / "w.db") as backend:
        await backend.setup()
        for i in range(5):
            await backend.append(f"s{i % 2}", [NewEvent("x", {"n": i})])
        projector = Seen()
        runner = SqliteProjectionRunner(Opening(backend, owns_inner=False), projector)
        await _run(runner, projector, 5)
        # The checkpoint was committed on the file, by the backend.
        assert runner.sqlite_store is backend
        assert await runner.sqlite_checkpoints.load("seen") == runner.checkpoint


@pytest.mark.postgres
async def test_postgres_runner_reads_through_the_wrapper(pg_dsn: str) -> None:
    async with open_store(pg_dsn) as backend:
        for i in range(5):
            await backend.append(f"s{i % 2}", [NewEvent("x", {"n": i})])
        projector = Seen()
        runner = PostgresProjectionRunner(Opening(backend, owns_inner=False), projector)
        await _run(runner, projector, 5)
        assert runner.pg_store is backend
        assert await runner.pg_checkpoints.load("seen") == runner.checkpoint


async def test_a_runner_without_its_backend_underneath_is_refused() -> None:
    memory = InMemoryEventStore()
    with pytest.raises(ConfigurationError, match="SqliteProjectionRunner needs a SqliteEventStore"):
        SqliteProjectionRunner(Opening(memory), Seen())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="PostgresProjectionRunner needs a Postgres"):
        PostgresProjectionRunner(memory, Seen())  # type: ignore[arg-type]
