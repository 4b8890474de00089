"""Projectors: fold the store's events, in global order, into a read model, with checkpoints.

A :class:`Projector` says what to do with each event — methods marked
:func:`handles` receive the decoded model (or override :meth:`Projector.handle`
for raw :class:`~evsrc.events.RecordedEvent`). A :class:`ProjectionRunner`
feeds it from ``store.subscribe(after=checkpoint)`` and saves the checkpoint
of each handled event in a :class:`CheckpointStore`, so a restart resumes
exactly after the last event handled. An error in the projector stops the
runner with :class:`~evsrc.errors.ProjectionError` and leaves the checkpoint
*before* the event that failed.

With a separate read-model store, delivery is at least once: a crash between
the handler's write and the checkpoint save replays that one event on
restart. On PostgreSQL, :class:`evsrc.postgres.projection.PostgresProjectionRunner`
commits the read-model change and the checkpoint in one transaction:
exactly once.
"""

from __future__ import annotations

import inspect
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Protocol,
    TypeVar,
    overload,
    runtime_checkable,
)

import anyio

from evsrc._annotated import caller_namespace, events_of
from evsrc.codec import Event, EventRegistry
from evsrc.errors import EvsrcError, InvalidInputError, ProjectionError
from evsrc.events import Checkpoint, Committed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from evsrc.events import RecordedEvent
    from evsrc.store import EventStore

__all__ = [
    "CheckpointStore",
    "InMemoryCheckpointStore",
    "Lag",
    "ProjectionRunner",
    "Projector",
    "handles",
]

F = TypeVar("F", bound="Callable[..., Any]")

_HANDLES_ATTR = "__evsrc_handles__"


@runtime_checkable
class CheckpointStore(Protocol):
    """Where projections keep their checkpoints, by projection name."""

    async def load(self, name: str) -> Checkpoint | None:
        """The saved checkpoint of projection ``name``; ``None`` to start from the beginning."""
        ...

    async def save(self, name: str, checkpoint: Checkpoint) -> None:
        """Save the checkpoint of projection ``name``."""
        ...


class InMemoryCheckpointStore:
    """Checkpoints in a dict: for tests and read models that live in the same process."""

    def __init__(self) -> None:
        self._checkpoints: dict[str, Checkpoint] = {}

    async def load(self, name: str) -> Checkpoint | None:
        """The saved checkpoint of ``name``, or ``None``."""
        return self._checkpoints.get(name)

    async def save(self, name: str, checkpoint: Checkpoint) -> None:
        """Save the checkpoint of ``name``."""
        self._checkpoints[name] = checkpoint


@overload
def handles(*event_types: type[Event]) -> Callable[[F], F]: ...
@overload
def handles(fn: F, /) -> F: ...
def handles(*event_types: Any) -> Any:
    """Mark an async projector method as the handler of the given event models.

    The method is called as ``await method(event, recorded, *context)``:
    the decoded model, the stored event (stream, seq, checkpoint, metadata …)
    and whatever the runner passes (the PostgreSQL runner passes the
    connection of the transaction). Used bare (``@handles``), the models are
    read from the annotation of the event parameter, as
    :func:`~evsrc.aggregate.applies` does.
    """
    if len(event_types) == 1 and inspect.isfunction(event_types[0]):
        return handles(*_annotated(event_types[0], caller_namespace(1)))(event_types[0])
    if not event_types:
        msg = "handles() needs at least one event model (or use it bare: @handles)"
        raise InvalidInputError(msg, argument="event_types", value=event_types)
    for t in event_types:
        if not (isinstance(t, type) and issubclass(t, Event)):
            msg = f"handles() takes Event subclasses, got {t!r}"
            raise InvalidInputError(msg, argument="event_types", value=t)

    def mark(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            msg = f"{getattr(fn, '__qualname__', fn)!r}: a @handles method must be async"
            raise InvalidInputError(msg, argument="fn", value=fn)
        existing: tuple[type[Event], ...] = getattr(fn, _HANDLES_ATTR, ())
        setattr(fn, _HANDLES_ATTR, existing + event_types)
        return fn

    return mark


def _annotated(fn: Callable[..., Any], localns: dict[str, Any]) -> tuple[type[Event], ...]:
    """The models named by the annotation of ``fn``'s event parameter."""
    try:
        return events_of(fn, localns, "@handles method")
    except NameError as exc:
        msg = f"@handles: {exc}; define the event before the projector, or name it in @handles(...)"
        raise InvalidInputError(msg, argument="fn", value=fn) from exc
    except EvsrcError as exc:
        raise InvalidInputError(str(exc), argument="fn", value=fn) from exc


class Projector:
    """Base class of projectors; ``name`` identifies its checkpoint.

    Mark async methods with :func:`handles`; events of other types are
    skipped (the checkpoint still moves past them). ``registry`` decodes
    events for the handlers; by default it holds exactly the handled models.
    Override :meth:`handle` to see every raw event instead.
    """

    name: ClassVar[str]
    registry: ClassVar[EventRegistry]

    _handlers: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, str] = {}
        models: list[type[Event]] = []
        for klass in reversed(cls.__mro__):
            for attr, member in vars(klass).items():
                for t in getattr(member, _HANDLES_ATTR, ()):
                    handlers[t.event_type] = attr
                    models.append(t)
        cls._handlers = handlers
        if "registry" not in cls.__dict__:
            registry = EventRegistry()
            for m in models:
                if m not in registry:
                    registry.register(m)
            cls.registry = registry

    def wants(self, recorded: RecordedEvent) -> bool:
        """Whether :meth:`handle` does anything with this event (else it is skipped)."""
        return recorded.type in self._handlers

    async def handle(self, recorded: RecordedEvent, *context: Any) -> None:
        """Decode the event and call its ``@handles`` method."""
        attr = self._handlers.get(recorded.type)
        if attr is None:
            return
        event = self.registry.decode(recorded)
        await getattr(self, attr)(event, recorded, *context)


@dataclass(frozen=True, slots=True)
class Lag:
    """How far a projection is behind the store.

    ``events``: events committed after its checkpoint (counted up to a limit;
    ``exact`` is false when the count stopped there). ``seconds``: age of the
    oldest event it has not processed yet (0 when caught up).
    """

    events: int
    seconds: float
    exact: bool = True


class ProjectionRunner:
    """Feeds a projector from the store and keeps its checkpoint.

    ``await runner.run()`` catches up and then follows live commits until
    cancelled, or raises ``ProjectionError`` when the projector fails.
    ``await runner.catch_up()`` processes what is committed now and returns.
    ``await runner.wait_until(checkpoint)`` returns once the projection has
    passed ``checkpoint`` (e.g. ``outcome.committed.checkpoint``).

    Skipped events (no handler) advance the checkpoint in memory at once and
    in the checkpoint store at least every ``save_skipped_every`` events, so
    a restart may re-read (and skip again) a few of them.
    """

    def __init__(
        self,
        store: EventStore,
        projector: Projector,
        checkpoints: CheckpointStore | None = None,
        *,
        name: str | None = None,
        save_skipped_every: int = 256,
    ) -> None:
        name = name if name is not None else getattr(projector, "name", None)
        if not isinstance(name, str) or not name:
            msg = "a projection needs a name: set Projector.name or pass name="
            raise InvalidInputError(msg, argument="name", value=name)
        if (
            isinstance(save_skipped_every, bool)
            or not isinstance(save_skipped_every, int)
            or save_skipped_every < 1
        ):
            msg = f"save_skipped_every must be an int >= 1, got {save_skipped_every!r}"
            raise InvalidInputError(msg, argument="save_skipped_every", value=save_skipped_every)
        self.store = store
        self.projector = projector
        self.checkpoints: CheckpointStore = (
            checkpoints if checkpoints is not None else InMemoryCheckpointStore()
        )
        self.name = name
        self.save_skipped_every = save_skipped_every
        #: The checkpoint of the last event processed (handled or skipped); ``None`` before any.
        self.checkpoint: Checkpoint | None = None
        #: The error that stopped the runner, if any.
        self.failed: ProjectionError | None = None
        self._loaded = False
        self._running = False
        self._unsaved = 0
        # Created only while someone waits: an event per processed event is not free.
        self._advanced: anyio.Event | None = None

    # -- running ------------------------------------------------------------------

    async def run(self) -> None:
        """Catch up, then follow live commits; returns only by cancellation or an error."""
        async with self._session(), _closing(self.store.subscribe(after=self.checkpoint)) as feed:
            async for recorded in feed:
                await self._step(recorded)

    async def catch_up(self) -> int:
        """Process every event committed so far, then return how many were processed."""
        n = 0
        async with self._session():
            async with _closing(self.store.read_all(after=self.checkpoint)) as feed:
                async for recorded in feed:
                    await self._step(recorded)
                    n += 1
            await self._flush()
        return n

    async def load_checkpoint(self) -> Checkpoint | None:
        """Read the saved checkpoint (done by ``run``/``catch_up``; call to inspect it first)."""
        self.checkpoint = await self._load()
        self._loaded = True
        self._notify()
        return self.checkpoint

    def _session(self) -> _Session:
        return _Session(self)

    async def _step(self, recorded: RecordedEvent) -> None:
        cp = self.checkpoint
        if cp is not None and recorded.checkpoint <= cp:
            return  # already processed (a subscription that overlaps a restart)
        if self.projector.wants(recorded):
            try:
                await self._process(recorded)
            except Exception as exc:
                err = ProjectionError(projection=self.name, event=recorded, cause=exc)
                self.failed = err
                self._notify()
                raise err from exc
            self._unsaved = 0
        else:
            self._unsaved += 1
            if self._unsaved >= self.save_skipped_every:
                await self._save_skipped(recorded.checkpoint)
                self._unsaved = 0
        self.checkpoint = recorded.checkpoint
        self._notify()

    async def _flush(self) -> None:
        if self._unsaved and self.checkpoint is not None:
            await self._save_skipped(self.checkpoint)
            self._unsaved = 0

    # -- the storage steps a backend-specific runner overrides ------------------------------

    async def _load(self) -> Checkpoint | None:
        return await self.checkpoints.load(self.name)

    async def _process(self, recorded: RecordedEvent) -> None:
        """Handle one event and save its checkpoint."""
        await self.projector.handle(recorded)
        await self.checkpoints.save(self.name, recorded.checkpoint)

    async def _save_skipped(self, checkpoint: Checkpoint) -> None:
        await self.checkpoints.save(self.name, checkpoint)

    # -- waiting and lag ----------------------------------------------------------------

    def _notify(self) -> None:
        advanced = self._advanced
        if advanced is not None:
            self._advanced = None
            advanced.set()

    def reached(self, checkpoint: Checkpoint | Committed) -> bool:
        """Whether the projection has processed everything up to ``checkpoint``."""
        target = checkpoint.checkpoint if isinstance(checkpoint, Committed) else checkpoint
        return self.checkpoint is not None and self.checkpoint >= target

    async def wait_until(self, checkpoint: Checkpoint | Committed) -> None:
        """Return once the projection has processed ``checkpoint`` (or a ``Committed``).

        Raises the runner's ``ProjectionError`` if it failed. Bound the wait
        with ``anyio.fail_after`` (or ``asyncio.timeout``).
        """
        if not isinstance(checkpoint, (Checkpoint, Committed)):
            msg = f"wait_until takes a Checkpoint or Committed, got {type(checkpoint).__name__}"
            raise InvalidInputError(msg, argument="checkpoint", value=checkpoint)
        while not self.reached(checkpoint):
            if self.failed is not None:
                raise self.failed
            advanced = self._advanced
            if advanced is None:
                advanced = self._advanced = anyio.Event()
            await advanced.wait()

    async def lag(self, *, limit: int = 100_000) -> Lag:
        """Events committed after the projection's checkpoint, and the age of the oldest."""
        n = 0
        oldest: datetime | None = None
        async with _closing(self.store.read_all(after=self.checkpoint, limit=limit)) as feed:
            async for recorded in feed:
                if oldest is None:
                    oldest = recorded.recorded_at
                n += 1
        seconds = 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        return Lag(n, seconds, exact=n < limit)


@asynccontextmanager
async def _closing(
    feed: AsyncIterator[RecordedEvent],
) -> AsyncIterator[AsyncIterator[RecordedEvent]]:
    """Close an event feed (an async generator) when done, as trio requires."""
    try:
        yield feed
    finally:
        aclose = getattr(feed, "aclose", None)
        if aclose is not None:
            await aclose()


class _Session:
    """One ``run``/``catch_up`` at a time; loads the checkpoint the first time."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self.runner = runner

    async def __aenter__(self) -> None:
        r = self.runner
        if r._running:
            msg = f"projection {r.name!r} is already running"
            raise EvsrcError(msg)
        if r.failed is not None:
            raise r.failed
        r._running = True
        if not r._loaded:
            try:
                await r.load_checkpoint()
            except BaseException:
                r._running = False
                raise

    async def __aexit__(self, *exc: object) -> None:
        self.runner._running = False
