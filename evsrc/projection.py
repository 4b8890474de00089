"""Projectors: fold the store's events, in global order, into a read model, with checkpoints.

A :class:`Projector` says what to do with each event — methods marked
:func:`handles` receive the decoded model (or override :meth:`Projector.handle`
for raw :class:`~evsrc.records.RecordedEvent`). A :class:`ProjectionRunner`
feeds it from ``store.subscribe(after=checkpoint)``, reading only the event
types its handlers take (and its ``stream_prefix``), in batches, and saves the
checkpoint in a :class:`CheckpointStore`, so a restart resumes exactly after
the last batch saved.

Deployed, several runners of one projection may run at once (app replicas):
one is *active*, the others stand by and take over when it stops or dies.
A checkpoint write names the checkpoint it replaces and is refused when that
is no longer the saved one, so a runner that lost its place without noticing
can never apply a batch a second time. Faults (a lost connection, a restarting
server) never end ``run()``: it retries with capped, jittered backoff and
resumes after the last saved checkpoint. Only the projector's own error stops
it, with :class:`~evsrc.errors.ProjectionError`, the checkpoint left *before*
the event that failed. ``docs/framework.md`` ("Projections as deployed") has
the long form.

With a separate read-model store, delivery is at least once: a crash between
the handler's write and the checkpoint save replays that batch on restart. On
PostgreSQL, :class:`evsrc.postgres.projection.PostgresProjectionRunner`
commits a batch's read-model change and its checkpoint in one transaction:
exactly once.
"""

from __future__ import annotations

import inspect
import random
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Final,
    Protocol,
    TypeVar,
    overload,
    runtime_checkable,
)

import anyio
import anyio.lowlevel

from evsrc._annotated import caller_namespace, events_of
from evsrc.errors import (
    EvsrcError,
    InvalidInputError,
    ProjectionError,
    StoreClosedError,
    StoreUnavailableError,
)
from evsrc.models import Event, EventRegistry
from evsrc.parking import PARKED_PREFIX, ParkedEvents
from evsrc.records import Checkpoint, Committed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from anyio.abc import TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from evsrc.records import RecordedEvent
    from evsrc.store import EventStore
    from evsrc.telemetry import Telemetry

__all__ = [
    "CheckpointStore",
    "FailurePolicy",
    "InMemoryCheckpointStore",
    "Lag",
    "ProjectionRunner",
    "Projector",
    "handles",
]

F = TypeVar("F", bound="Callable[..., Any]")

_HANDLES_ATTR = "__evsrc_handles__"

#: Runner states (``runner.state``); a retrying runner reports ``"retrying: <error>"``.
STOPPED: Final = "stopped"
STANDBY: Final = "standby"
CATCHING_UP: Final = "catching up"
RUNNING: Final = "running"


@runtime_checkable
class CheckpointStore(Protocol):
    """Where projections keep their checkpoints, by projection name.

    A store may also offer ``async compare_and_save(name, previous, checkpoint)
    -> bool``: save only if the saved checkpoint is still ``previous`` (``None``:
    none saved). Runners use it when present, so that a runner that lost its
    turn cannot move a checkpoint that another one has moved meanwhile.
    """

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

    async def compare_and_save(
        self, name: str, previous: Checkpoint | None, checkpoint: Checkpoint
    ) -> bool:
        """Save ``checkpoint`` iff the saved one is ``previous``; whether it was saved."""
        if self._checkpoints.get(name) != previous:
            return False
        self._checkpoints[name] = checkpoint
        return True

    async def reset(self, name: str) -> None:
        """Forget the checkpoint of ``name``: its next runner starts from the beginning."""
        self._checkpoints.pop(name, None)


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

    Mark async methods with :func:`handles`; the runner reads only the events
    of those types (the filter is pushed to the store), restricted to streams
    starting with ``stream_prefix`` when it is set. ``registry`` decodes events
    for the handlers; by default it holds exactly the handled models.
    Override :meth:`handle` and :meth:`wants` to see every raw event instead
    (the runner then reads everything). Override :meth:`handle_batch` to
    handle a whole batch at once (say, one multi-row ``INSERT``).
    """

    name: ClassVar[str]
    registry: ClassVar[EventRegistry]
    #: Only streams whose name starts with this (``None``: every stream).
    stream_prefix: ClassVar[str | None] = None

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

    def event_types(self) -> list[str] | None:
        """The event types the runner reads: those of the handlers; ``None`` for every type.

        ``None`` when :meth:`wants` or :meth:`handle` is overridden (a raw projector).
        """
        cls = type(self)
        if cls.wants is not Projector.wants or cls.handle is not Projector.handle:
            return None
        return sorted(self._handlers)

    async def handle(self, recorded: RecordedEvent, *context: Any) -> None:
        """Decode the event and call its ``@handles`` method."""
        attr = self._handlers.get(recorded.type)
        if attr is None:
            return
        event = self.registry.decode(recorded)
        await getattr(self, attr)(event, recorded, *context)

    async def handle_batch(self, events: Sequence[RecordedEvent], *context: Any) -> None:
        """Handle a batch of wanted events, in order; by default :meth:`handle` for each.

        A runner calls this only when a subclass overrides it. An error then
        fails the whole batch: the checkpoint stays before its first event.
        """
        for recorded in events:
            await self.handle(recorded, *context)


def overrides_handle_batch(projector: Projector) -> bool:
    """Whether ``projector`` declares its own batch handler."""
    return type(projector).handle_batch is not Projector.handle_batch


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


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """What a runner does when its projector raises on an event (not on a fault).

    ``retries``: how many more times to try the event, after ``backoff``
    seconds doubling up to ``max_backoff``. Then ``then``: ``"stop"`` (the
    runner stops with ``ProjectionError``, its checkpoint just before the
    event) or ``"park"`` (the event is recorded in the projection's parked
    stream, ``$parked:<name>``, with its position and the error, and the
    runner goes on). Build one with :meth:`stop`, :meth:`retry` or :meth:`park`.
    """

    retries: int = 0
    backoff: float = 0.1
    max_backoff: float = 5.0
    then: str = "stop"

    def __post_init__(self) -> None:
        _number(self.retries, "retries", low=0, integer=True)
        _number(self.backoff, "backoff", low=0)
        _number(self.max_backoff, "max_backoff", low=0)
        if self.then not in ("stop", "park"):
            msg = f'then must be "stop" or "park", got {self.then!r}'
            raise InvalidInputError(msg, argument="then", value=self.then)

    @classmethod
    def stop(cls) -> FailurePolicy:
        """Stop at the first failure (the default)."""
        return cls()

    @classmethod
    def retry(
        cls, times: int, *, backoff: float = 0.1, max_backoff: float = 5.0, then: str = "stop"
    ) -> FailurePolicy:
        """Try a failing event ``times`` more times with backoff, then stop (or park)."""
        return cls(times, backoff, max_backoff, then)

    @classmethod
    def park(
        cls, *, retries: int = 0, backoff: float = 0.1, max_backoff: float = 5.0
    ) -> FailurePolicy:
        """Park a failing event (after ``retries`` more attempts) and continue."""
        return cls(retries, backoff, max_backoff, "park")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based), jittered."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** min(attempt - 1, 30))
        jitter: float = random.uniform(0.5, 1.0)
        return ceiling * jitter


class _StopRequestedError(Exception):
    """stop() came while a failing event waited for its retry (internal)."""


class _LeaseLostError(EvsrcError):
    """Another runner of the projection moved its checkpoint; this one stands by."""


_INTERRUPTED: Final = object()
#: Seconds without an event after which a runner counts as caught up (``running``).
_IDLE: Final = 0.05

# In-process leases of the in-memory rule: event store -> projection name -> holder.
_holders: weakref.WeakKeyDictionary[object, dict[str, ProjectionRunner]] = (
    weakref.WeakKeyDictionary()
)
_released: weakref.WeakKeyDictionary[object, dict[str, anyio.Event]] = weakref.WeakKeyDictionary()


def _number(value: object, argument: str, *, low: float, integer: bool = False) -> None:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int if integer else (int, float))
        and value >= low
        and value == value  # not NaN
        and value != float("inf")
    )
    if not ok:
        kind = "an int" if integer else "a number"
        msg = f"{argument} must be {kind} >= {low}, got {value!r}"
        raise InvalidInputError(msg, argument=argument, value=value)


class ProjectionRunner:
    """Feeds a projector from the store and keeps its checkpoint.

    ``await runner.run()`` catches up and then follows live commits until
    :meth:`stop` or cancellation, or raises ``ProjectionError`` when the
    projector fails; ``async with runner.running():`` runs it in the
    background. ``await runner.catch_up()`` processes what is committed now
    and returns. ``await runner.wait_until(checkpoint)`` returns once the
    projection has passed ``checkpoint`` (e.g. ``outcome.committed.checkpoint``);
    ``await runner.wait_until_head()`` once it has passed everything committed
    before the call.

    Of the runners of one projection name on one store, one is active at a
    time; the others report ``standby`` and take over when it ends. Events
    are handled in batches of up to ``batch_size``: whatever is ready, waiting
    at most ``max_batch_latency`` seconds for more. Skipped events (no
    handler) advance the checkpoint in memory at once and in the checkpoint
    store at least every ``save_skipped_every`` events. Faults are retried
    after ``retry_initial`` seconds, doubling up to ``retry_max``, jittered.

    Backends with transactions override :meth:`_process_batch` (one
    transaction per batch) or, simpler, :meth:`_process` (one per event).
    """

    def __init__(
        self,
        store: EventStore,
        projector: Projector,
        checkpoints: CheckpointStore | None = None,
        *,
        name: str | None = None,
        save_skipped_every: int = 256,
        batch_size: int = 500,
        max_batch_latency: float = 0.0,
        retry_initial: float = 0.05,
        retry_max: float = 2.0,
        standby_interval: float = 1.0,
        on_failure: FailurePolicy | None = None,
        parked_poll: float = 1.0,
    ) -> None:
        name = name if name is not None else getattr(projector, "name", None)
        if not isinstance(name, str) or not name:
            msg = "a projection needs a name: set Projector.name or pass name="
            raise InvalidInputError(msg, argument="name", value=name)
        if projector.event_types() == []:
            msg = (
                f"projector {name!r} handles no event type: mark its methods with "
                "@handles(...), or override wants() and handle()"
            )
            raise InvalidInputError(msg, argument="projector", value=projector)
        _number(save_skipped_every, "save_skipped_every", low=1, integer=True)
        _number(batch_size, "batch_size", low=1, integer=True)
        _number(max_batch_latency, "max_batch_latency", low=0)
        _number(retry_initial, "retry_initial", low=0.001)
        _number(retry_max, "retry_max", low=0.001)
        _number(standby_interval, "standby_interval", low=0.001)
        _number(parked_poll, "parked_poll", low=0.001)
        if on_failure is not None and not isinstance(on_failure, FailurePolicy):
            msg = f"on_failure must be a FailurePolicy, got {type(on_failure).__name__}"
            raise InvalidInputError(msg, argument="on_failure", value=on_failure)
        self.store = store
        self.projector = projector
        self.checkpoints: CheckpointStore = (
            checkpoints if checkpoints is not None else InMemoryCheckpointStore()
        )
        self.name = name
        self.save_skipped_every = save_skipped_every
        self.batch_size = batch_size
        self.max_batch_latency = float(max_batch_latency)
        self.retry_initial = float(retry_initial)
        self.retry_max = float(max(retry_max, retry_initial))
        self.standby_interval = float(standby_interval)
        #: What happens when the projector raises on an event.
        self.on_failure = on_failure if on_failure is not None else FailurePolicy()
        #: This projection's parked (dead-letter) events.
        self.parked = ParkedEvents(store, name)
        #: Seconds between checks for replay requests (parking runners only).
        self.parked_poll = float(parked_poll)
        #: The checkpoint of the last event processed (handled or skipped); ``None`` before any.
        self.checkpoint: Checkpoint | None = None
        #: The error that stopped the runner, if any.
        self.failed: ProjectionError | None = None
        #: ``"stopped"``, ``"standby"``, ``"catching up"``, ``"running"`` or ``"retrying: …"``.
        self.state: str = STOPPED
        #: Faults retried since the last batch that committed.
        self.failures = 0
        self._saved: Checkpoint | None = None
        self._loaded = False
        self._running = False
        self._stopping = False
        self._stopped: anyio.Event | None = None
        self._wait_scope: anyio.CancelScope | None = None
        self._feed_error: BaseException | None = None
        self._unsaved = 0
        # Created only while someone waits: an event per processed event is not free.
        self._advanced: anyio.Event | None = None
        self._parked_seen = -1
        #: Set by :func:`evsrc.telemetry.instrument`: spans and metrics per batch.
        self.telemetry: Telemetry | None = None
        self._parked_dirty = False

    # -- running ------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Stand by until active, catch up, then follow live commits, until :meth:`stop`.

        Faults are retried forever; raises ``ProjectionError`` when the
        projector fails, and errors that retrying cannot cure
        (``SchemaError``, ``StoreClosedError``) as they are.
        """
        async with self._session():
            self._stopped = anyio.Event()
            task_status.started()
            try:
                while not self._stopping:
                    try:
                        if not await self._acquire_lease():
                            self.state = STANDBY
                            await self._standby_wait()
                            continue
                        try:
                            await self._activate()
                            await self._follow(live=True)
                        finally:
                            await self._release_lease()
                    except _LeaseLostError:
                        # Another runner has moved on: give it the turn.
                        self.state = STANDBY
                        await self._standby_wait()
                    except ProjectionError:
                        raise
                    except Exception as exc:
                        if not self._is_fault(exc):
                            raise
                        self.failures += 1
                        self.state = f"retrying: {type(exc).__name__}: {exc}"
                        await self._pause(self._backoff(self.failures))
            finally:
                self.state = STOPPED
                self._stopping = False
                self._stopped.set()

    async def catch_up(self) -> int:
        """Process every event committed so far, then return how many were processed.

        Waits (in ``standby``) while another runner of the projection is
        active. Faults are raised, not retried; so is an ``EvsrcError`` when
        another runner moved the checkpoint meanwhile (nothing of that batch
        was saved).
        """
        async with self._session():
            while not await self._acquire_lease():
                self.state = STANDBY
                await self._standby_wait()
            try:
                await self._activate()
                n = await self._follow(live=False)
                await self._flush()
            finally:
                await self._release_lease()
                self.state = STOPPED
        return n

    async def stop(self) -> None:
        """Finish the batch in hand, save its checkpoint and make ``run()`` return.

        Returns once it has; at once if the runner is not running.
        """
        stopped = self._stopped
        if not self._running or stopped is None or stopped.is_set():
            return
        self._stopping = True
        self._interrupt()
        await stopped.wait()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ProjectionRunner]:
        """``async with runner.running():`` — run in the background; stop on exit.

        Raises, on exit, the error that stopped the runner (``ProjectionError``
        or an error that retrying cannot cure).
        """
        errors: list[Exception] = []

        async def run(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            started: list[bool] = []

            class Status:
                def started(self, value: None = None) -> None:
                    started.append(True)
                    task_status.started()

            try:
                await self.run(task_status=Status())
            except Exception as exc:
                errors.append(exc)
                if not started:
                    task_status.started()

        body_error: Exception | None = None
        async with anyio.create_task_group() as tg:
            await tg.start(run)
            if not errors:
                try:
                    yield self
                except Exception as exc:  # raised below, not wrapped in an ExceptionGroup
                    body_error = exc
                finally:
                    await self.stop()
        if body_error is not None:
            raise body_error
        if errors:
            raise errors[0]

    async def load_checkpoint(self) -> Checkpoint | None:
        """Read the saved checkpoint (done by ``run``/``catch_up``; call to inspect it first)."""
        self.checkpoint = self._saved = await self._load()
        self._loaded = True
        self._notify()
        return self.checkpoint

    def _session(self) -> _Session:
        return _Session(self)

    async def _activate(self) -> None:
        """Now the active runner: load the checkpoint that the others have left."""
        await self.load_checkpoint()
        self._unsaved = 0
        self.state = CATCHING_UP

    # -- the feed and its batches ------------------------------------------------------

    def feed_filter(self) -> dict[str, Any]:
        """The ``read_all``/``subscribe`` keywords of this projection's filter."""
        kw: dict[str, Any] = {}
        types = self.projector.event_types()
        if types is not None:
            kw["types"] = types
        prefix = getattr(self.projector, "stream_prefix", None)
        if prefix is not None:
            kw["stream_prefix"] = prefix
        return kw

    def _feed(self, after: Checkpoint | None, live: bool) -> AsyncIterator[RecordedEvent]:
        kw = self.feed_filter()
        if live:
            return self.store.subscribe(after, **kw)
        return self.store.read_all(after, **kw)

    async def _read(
        self, after: Checkpoint | None, live: bool, send: MemoryObjectSendStream[RecordedEvent]
    ) -> None:
        async with send:
            try:
                async with _closing(self._feed(after, live)) as feed:
                    async for recorded in feed:
                        # Without yielding while there is room: the consumer wakes
                        # to a page's worth, not to every event.
                        try:
                            send.send_nowait(recorded)
                        except anyio.WouldBlock:
                            await send.send(recorded)
            except Exception as exc:
                self._feed_error = exc

    async def _follow(self, *, live: bool) -> int:
        """Read the feed from the checkpoint and process it in batches; the count processed."""
        self._feed_error = None
        send, receive = anyio.create_memory_object_stream["RecordedEvent"](self.batch_size)
        n = 0
        error: Exception | None = None
        async with anyio.create_task_group() as tg, receive:
            tg.start_soon(self._read, self.checkpoint, live, send)
            tg.start_soon(self._watch_lease)
            if self.on_failure.then == "park":
                tg.start_soon(self._watch_parked)
            try:
                n = await self._consume(receive)
            except Exception as exc:  # raised outside, not wrapped in an ExceptionGroup
                error = exc
            finally:
                tg.cancel_scope.cancel()
        self._parked_dirty = False
        if error is not None:
            raise error
        return n

    async def _consume(self, receive: MemoryObjectReceiveStream[RecordedEvent]) -> int:
        n = 0
        while not self._stopping:
            if self._lease_lost():
                raise _LeaseLostError
            if self._parked_dirty:
                self._parked_dirty = False
                await self.replay_parked()
            try:
                first = await self._next(receive)
            except anyio.EndOfStream:
                if self._feed_error is not None:
                    raise self._feed_error from None
                return n
            if first is _INTERRUPTED:
                continue
            batch: list[RecordedEvent] = [first]
            deadline = anyio.current_time() + self.max_batch_latency
            refilled = False
            while len(batch) < self.batch_size:
                try:
                    batch.append(receive.receive_nowait())
                    continue
                except anyio.WouldBlock:
                    pass
                except anyio.EndOfStream:
                    break
                if not refilled:
                    # Let a reader that waited for room refill the buffer first.
                    refilled = True
                    await anyio.lowlevel.checkpoint()
                    continue
                left = deadline - anyio.current_time()
                if left <= 0:
                    break
                with anyio.move_on_after(left):
                    try:
                        batch.append(await receive.receive())
                        continue
                    except anyio.EndOfStream:
                        pass
                break
            n += await self._commit(batch)
            self.failures = 0
            if len(batch) >= self.batch_size:
                self.state = CATCHING_UP
            elif not receive.statistics().current_buffer_used:
                self.state = RUNNING  # a short batch and nothing waiting: caught up
        return n

    async def _next(self, receive: MemoryObjectReceiveStream[RecordedEvent]) -> Any:
        """The next event; ``running`` once the feed has had nothing for a moment."""
        try:
            return receive.receive_nowait()
        except anyio.WouldBlock:
            pass
        with anyio.move_on_after(_IDLE):
            return await self._interruptible(receive.receive)
        self.state = RUNNING
        return await self._interruptible(receive.receive)

    async def _commit(self, batch: list[RecordedEvent]) -> int:
        """Process one batch: its wanted events through the hooks, the rest skipped."""
        cp = self.checkpoint
        if cp is not None:
            batch = [e for e in batch if e.checkpoint > cp]  # a feed overlapping a restart
        if not batch:
            return 0
        wants = self.projector.wants
        if self._raw:
            wanted = [e for e in batch if wants(e) and not e.stream.startswith(PARKED_PREFIX)]
        else:
            wanted = [e for e in batch if wants(e)]
        if wanted:
            telemetry = self.telemetry
            try:
                if telemetry is None:
                    await self._handle_wanted(wanted)
                else:
                    with telemetry.projection_batch(self.name, wanted):
                        await self._handle_wanted(wanted)
            except _StopRequestedError:
                self._unsaved = 0
                self._notify()
                return 0
            # Skipped events after the last handled one are counted as unsaved.
            self._unsaved = sum(1 for e in batch if e.checkpoint > wanted[-1].checkpoint)
        else:
            self._unsaved += len(batch)
        if self._unsaved >= self.save_skipped_every:
            await self._save_skipped(batch[-1].checkpoint)
            self._unsaved = 0
        self.checkpoint = batch[-1].checkpoint
        self._notify()
        return len(batch)

    async def _handle_wanted(self, wanted: list[RecordedEvent]) -> None:
        """Process the wanted events of a batch under the failure policy."""
        try:
            await self._process_batch(wanted)
        except ProjectionError as exc:
            policy = self.on_failure
            if policy.retries == 0 and policy.then == "stop":
                await self._fail(exc, wanted)
                raise
            await self._recover(exc, wanted)

    @property
    def _raw(self) -> bool:
        """Whether the feed is unfiltered by type (then parked streams are skipped here)."""
        return self.projector.event_types() is None

    async def _recover(self, exc: ProjectionError, wanted: list[RecordedEvent]) -> None:
        """A batch failed under a retrying or parking policy: commit what came before, then
        take the rest one event at a time (so a batch handler's poison is isolated)."""
        failed = exc.event
        done = self.checkpoint
        rest = [e for e in wanted if done is None or e.checkpoint > done]
        if failed is not None:
            before = [e for e in rest if e.checkpoint < failed.checkpoint]
            if before:
                await self._process_batch(before)
                rest = rest[len(before) :]
        # Per-event handlers name the event that failed: that was its first attempt.
        tried = failed is not None and not overrides_handle_batch(self.projector)
        for recorded in rest:
            if tried and recorded.checkpoint == failed.checkpoint:
                await self._one(recorded, exc)
            else:
                await self._one(recorded, None)

    async def _one(self, recorded: RecordedEvent, error: ProjectionError | None) -> None:
        """Handle one event under the failure policy: retry, then stop or park it.

        ``error``: the failure of a first attempt already made, if any.
        """
        policy = self.on_failure
        attempts = 0 if error is None else 1
        while True:
            if error is not None:
                if attempts > policy.retries:
                    if policy.then == "park":
                        await self._park(recorded, error, attempts)
                        return
                    self.failed = error
                    self._notify()
                    raise error
                self.state = f"retrying {recorded.stream}#{recorded.seq}: {error.cause!r}"
                await self._pause(policy.delay(attempts))
                if self._stopping or self._lease_lost():
                    raise _StopRequestedError from error
            try:
                await self._process_batch([recorded])
                return
            except ProjectionError as exc:
                attempts += 1
                error = exc

    async def _park(self, recorded: RecordedEvent, exc: ProjectionError, attempts: int) -> None:
        """Record ``recorded`` in the parked stream, then move the checkpoint past it.

        In that order: a crash between the two handles the event again on
        restart (and parks it again, idempotently, if it fails again); the
        other order could lose it. See ``docs/framework.md`` ("Poison events").
        """
        cause = exc.cause if exc.cause is not None else exc
        await self.parked.park(recorded, cause, attempts)
        await self._save_skipped(recorded.checkpoint)
        self.checkpoint = recorded.checkpoint
        self.state = CATCHING_UP

    async def _watch_parked(self) -> None:
        """While active, look for replay requests every ``parked_poll`` seconds."""
        while True:
            try:
                seen = await self.store.last_seq(self.parked.stream)
            except Exception:  # a fault: the next poll tries again
                seen = self._parked_seen
            if seen != self._parked_seen:
                self._parked_seen = seen
                self._parked_dirty = True
                self._interrupt()
            await anyio.sleep(self.parked_poll)

    async def replay_parked(self) -> int:
        """Handle again the parked events whose replay was requested; how many succeeded.

        Called by the active runner when it sees a request (``python -m evsrc
        parked replay``); call it directly to replay at once. Each request is
        handled once: a success is recorded as ``replayed``, a failure as
        ``failed`` (the event stays parked). Other events are not touched.
        """
        done = 0
        for p in await self.parked.pending():
            if p.status != "replay requested":
                continue
            try:
                recorded = await self.parked.original(p)
            except InvalidInputError as exc:
                await self.parked.failed(p, exc)
                continue
            try:
                await self._replay(recorded, p.number)
            except Exception as exc:
                if self._is_fault(exc):
                    raise
                await self.parked.failed(p, exc)
                continue
            await self.parked.replayed(p)
            done += 1
        return done

    async def _replay(self, recorded: RecordedEvent, number: int) -> None:
        """Handle a parked event again, outside the feed (transactional backends override)."""
        if overrides_handle_batch(self.projector):
            await self.projector.handle_batch([recorded])
        else:
            await self.projector.handle(recorded)

    async def _fail(self, exc: ProjectionError, wanted: list[RecordedEvent]) -> None:
        """The projector failed: commit the batch's events before the failed one, then stop."""
        failed = exc.event
        done = self.checkpoint
        before = [
            e
            for e in wanted
            if failed is not None
            and e.checkpoint < failed.checkpoint
            and (done is None or e.checkpoint > done)
        ]
        if before:
            await self._process_batch(before)
            self.checkpoint = before[-1].checkpoint
        self.failed = exc
        self._notify()

    async def _flush(self) -> None:
        if self._unsaved and self.checkpoint is not None:
            await self._save_skipped(self.checkpoint)
            self._unsaved = 0

    # -- the storage steps a backend-specific runner overrides ------------------------------

    async def _load(self) -> Checkpoint | None:
        return await self.checkpoints.load(self.name)

    async def _process_batch(self, events: list[RecordedEvent]) -> None:
        """Handle ``events`` (all wanted, in order) and save the last one's checkpoint.

        The hook of transactional backends: do it in one transaction and set
        ``self._saved`` and ``self.checkpoint`` to the last event's checkpoint
        after it commits; raise ``ProjectionError`` (with ``event=``) when the
        projector fails. This default calls :meth:`_process` for each event.
        """
        if overrides_handle_batch(self.projector):
            try:
                await self.projector.handle_batch(events)
            except Exception as exc:
                raise self._projection_error(exc, events[0]) from exc
            await self._save_checkpoint(events[-1].checkpoint)
            self.checkpoint = events[-1].checkpoint
            return
        for recorded in events:
            try:
                await self._process(recorded)
            except (ProjectionError, _LeaseLostError):
                raise
            except Exception as exc:
                raise self._projection_error(exc, recorded) from exc
            self._saved = self.checkpoint = recorded.checkpoint

    async def _process(self, recorded: RecordedEvent) -> None:
        """Handle one event and save its checkpoint (the per-event hook)."""
        await self.projector.handle(recorded)
        await self._save_checkpoint(recorded.checkpoint)

    async def _save_skipped(self, checkpoint: Checkpoint) -> None:
        await self._save_checkpoint(checkpoint)

    async def _save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Save ``checkpoint`` in place of ``self._saved``; refused: another runner took over."""
        cas = getattr(self.checkpoints, "compare_and_save", None)
        if cas is None:
            await self.checkpoints.save(self.name, checkpoint)
        elif not await cas(self.name, self._saved, checkpoint):
            raise _LeaseLostError
        self._saved = checkpoint

    def _projection_error(self, exc: Exception, recorded: RecordedEvent) -> Exception:
        """The error to raise for ``exc`` from a handler: a fault as is, else ProjectionError."""
        if isinstance(exc, (ProjectionError, _LeaseLostError)) or self._is_fault(exc):
            return exc
        return ProjectionError(projection=self.name, event=recorded, cause=exc)

    def _is_fault(self, exc: BaseException) -> bool:
        """Whether ``exc`` may pass by itself (retry) rather than stop the runner."""
        if isinstance(exc, StoreClosedError):
            return False
        return isinstance(exc, (StoreUnavailableError, OSError, TimeoutError))

    # -- one active runner -------------------------------------------------------------

    async def _acquire_lease(self) -> bool:
        """Become the active runner of the projection if none is; whether it did."""
        holders = _holders.setdefault(self.store, {})
        holder = holders.get(self.name)
        if holder is None or holder is self:
            holders[self.name] = self
            return True
        return False

    async def _release_lease(self) -> None:
        holders = _holders.get(self.store, {})
        if holders.get(self.name) is self:
            del holders[self.name]
            released = _released.get(self.store, {}).pop(self.name, None)
            if released is not None:
                released.set()

    def _lease_lost(self) -> bool:
        """Whether the lease was lost while active (checked between batches)."""
        return False

    async def _watch_lease(self) -> None:
        """Watch the lease while active; call :meth:`_interrupt` when it is lost."""

    async def _follow_active(self) -> None:
        """In standby, take the active runner's saved checkpoint (so ``wait_until`` works)."""
        try:
            cp = await self._load()
        except Exception:  # the active runner's progress is only informative here
            return
        if cp is not None and (self.checkpoint is None or cp > self.checkpoint):
            self.checkpoint = cp
            self._notify()

    async def _standby_wait(self) -> None:
        """Wait in standby before trying for the lease again."""
        await self._follow_active()
        waits = _released.setdefault(self.store, {})
        released = waits.get(self.name)
        if released is None:
            released = waits[self.name] = anyio.Event()
        await self._interruptible(released.wait, within=self.standby_interval)

    # -- interruptible waits --------------------------------------------------------

    async def _interruptible(self, fn: Callable[[], Any], *, within: float | None = None) -> Any:
        """``await fn()``; ``_INTERRUPTED`` on :meth:`stop`, a lost lease or ``within`` s."""
        with anyio.CancelScope() as scope:
            if within is not None:
                scope.deadline = anyio.current_time() + within
            self._wait_scope = scope
            if self._stopping or self._lease_lost() or self._parked_dirty:
                scope.cancel()
            try:
                return await fn()
            finally:
                self._wait_scope = None
        return _INTERRUPTED

    def _interrupt(self) -> None:
        scope = self._wait_scope
        if scope is not None:
            scope.cancel()

    async def _pause(self, seconds: float) -> None:
        await self._interruptible(anyio.sleep_forever, within=seconds)

    def _backoff(self, failures: int) -> float:
        """Capped exponential backoff with jitter (half to full)."""
        ceiling = min(self.retry_max, self.retry_initial * 2.0 ** min(failures - 1, 30))
        jitter: float = random.uniform(0.5, 1.0)
        return ceiling * jitter

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
        target = checkpoint.checkpoint if isinstance(checkpoint, Committed) else checkpoint
        while not self.reached(target):
            if self.failed is not None:
                raise self.failed
            # Take the wakeup before probing, so an advance meanwhile is not missed.
            advanced = self._advanced
            if advanced is None:
                advanced = self._advanced = anyio.Event()
            if await self._nothing_to_read_until(target):
                return
            await advanced.wait()

    async def _nothing_to_read_until(self, target: Checkpoint) -> bool:
        """Whether no event this projection reads lies between its checkpoint and ``target``.

        The runner reads only its events, so its checkpoint stops at the last
        of them; a checkpoint of another event is reached when nothing it
        reads comes before it.
        """
        flt = self.feed_filter()
        if not flt:
            return False
        feed = self.store.read_all(after=self.checkpoint, limit=1, **flt)
        async with _closing(feed) as events:
            async for recorded in events:
                return recorded.checkpoint > target
        return True

    async def head(self) -> Checkpoint | None:
        """The checkpoint of the last committed event this projection reads (``None``: none).

        Reads the events after the runner's checkpoint; backends override it
        with a direct look-up.
        """
        last = self.checkpoint
        async with _closing(self.store.read_all(after=self.checkpoint, **self.feed_filter())) as f:
            async for recorded in f:
                last = recorded.checkpoint
        return last

    async def wait_until_head(self) -> None:
        """Return once the projection has processed every event committed before the call.

        Needs a running runner (this one, or — for a standby runner — the
        active one, whose progress it follows). Bound it with ``anyio.fail_after``.
        """
        target = await self.head()
        if target is not None:
            await self.wait_until(target)

    async def lag(self, *, limit: int = 100_000) -> Lag:
        """Events it reads committed after its checkpoint, and the age of the oldest."""
        n = 0
        oldest: datetime | None = None
        feed = self.store.read_all(after=self.checkpoint, limit=limit, **self.feed_filter())
        async with _closing(feed) as events:
            async for recorded in events:
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
        r._stopping = False
        if not r._loaded:
            try:
                await r.load_checkpoint()
            except BaseException:
                r._running = False
                raise

    async def __aexit__(self, *exc: object) -> None:
        self.runner._running = False
