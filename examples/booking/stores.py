"""Which store the booking app runs on: one URL, shared by the command line and the HTTP app.

``--store URL`` (``memory:``, ``sqlite:///path.db``, ``postgresql://…``), else
``$EVSRC_STORE``, else the legacy ``--dsn`` / ``$EVSRC_DSN``, else a SQLite
file in the user's data directory (:func:`default_store_url`), so that
separate invocations and server restarts keep their bookings with no setup.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from evsrc.memory import InMemoryEventStore
from evsrc.urls import open_store
from examples.booking.privacy import shredded

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from evsrc.records import Committed, Conflict, NewEvent, RecordedEvent
    from evsrc.store import EventStore

__all__ = [
    "LaggyMemoryStore",
    "backend_name",
    "default_store_path",
    "default_store_url",
    "open_booking_store",
    "resolve_store_url",
]

#: The directory under the user's data directory that holds the default store.
APP_DIR = "evsrc-booking"


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/evsrc-booking/bookings.db`` (``~/.local/share/…`` when unset)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / APP_DIR / "bookings.db"


def default_store_url(environ: Mapping[str, str] | None = None) -> str:
    """The default store: a SQLite file at :func:`default_store_path`."""
    return "sqlite:///" + str(default_store_path(environ))


def resolve_store_url(
    store: str | None,
    dsn: str | None = None,
    *,
    default: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The store URL to use: ``store``, ``$EVSRC_STORE``, ``dsn``, ``$EVSRC_DSN``, the default.

    ``default`` replaces :func:`default_store_url` (the race demo defaults to ``memory:``).
    """
    env = os.environ if environ is None else environ
    for candidate in (store, env.get("EVSRC_STORE"), dsn, env.get("EVSRC_DSN")):
        if candidate:
            return candidate
    return default if default is not None else default_store_url(env)


def backend_name(url: str) -> str:
    """``memory``, ``sqlite`` or ``postgres``: the backend a store URL names, for display."""
    scheme = url.split(":", 1)[0].lower()
    return "postgres" if scheme in ("postgresql", "postgres") else scheme


class LaggyMemoryStore(InMemoryEventStore):
    """The in-memory store with a simulated round trip on every read and append.

    The plain in-memory store answers without ever yielding to the event
    loop, so concurrent bookers on it simply run one after another and never
    race. This one waits a random 0…``latency`` seconds before each read and
    append, as a network would, so that bookers observe the same state,
    race, conflict and batch — the race demo is then a real race.
    """

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency
        self._rng = random.Random()

    async def _round_trip(self) -> None:
        await anyio.sleep(self._rng.uniform(0, self.latency))

    async def read(
        self,
        stream: str,
        *,
        after: int = 0,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """``InMemoryEventStore.read`` after a simulated round trip."""
        await self._round_trip()
        return await super().read(stream, after=after, limit=limit, backwards=backwards)

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """``InMemoryEventStore.append_expect`` after a simulated round trip."""
        await self._round_trip()
        return await super().append_expect(stream, expected, events)


def _make_sqlite_dir(url: str) -> None:
    if url.lower().startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


@contextlib.asynccontextmanager
async def open_booking_store(url: str, *, latency: float = 0.0) -> AsyncIterator[EventStore]:
    """The store ``url`` names, connected and set up, actors encrypted; closed on exit.

    It is a :class:`~evsrc.shredding.ShreddingStore` (see
    :func:`examples.booking.privacy.shredded`): actors' names are stored
    encrypted per actor, so that ``forget`` can forget one.

    ``latency`` (seconds, ``memory:`` only) simulates a network round trip.
    A SQLite file's directory is created first. Raises
    ``evsrc.errors.ConfigurationError`` for a bad URL.
    """
    if url in ("memory:", "memory://") and latency > 0:
        laggy = LaggyMemoryStore(latency)
        async with laggy, shredded(laggy) as store:
            yield store
        return
    _make_sqlite_dir(url)
    opened = await open_store(url)
    async with opened, shredded(opened) as store:
        yield store
