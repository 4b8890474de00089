"""The projection runner: feeds a projector from the store and keeps its checkpoint.

:class:`ProjectionRunner` composes collaborators, each with one job: its
lease (:mod:`~evsrc.projection.lease`: one active runner per projection), the
feed loop (:mod:`~evsrc.projection.session`: stand by, catch up, follow), the
batch applier with its failure policy and parking
(:mod:`~evsrc.projection.applier`), its interruptible waits
(:mod:`~evsrc.projection.waits`) and its progress as others see it
(:mod:`~evsrc.projection.progress`: waits for a checkpoint, lag). It
inherits the storage steps a backend overrides (:mod:`~evsrc.projection.steps`).
What stays here are the public methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from evsrc.errors import InvalidInputError
from evsrc.parking import ParkedEvents
from evsrc.projection.applier import BatchApplier
from evsrc.projection.checkpoints import CheckpointStore, InMemoryCheckpointStore
from evsrc.projection.lease import InMemoryLease, LeaseKeeper
from evsrc.projection.policy import FailurePolicy, check_number
from evsrc.projection.progress import STOPPED, Lag, Progress
from evsrc.projection.session import FeedLoop, Session, background
from evsrc.projection.steps import StorageSteps
from evsrc.projection.waits import Waits

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from anyio.abc import TaskStatus

    from evsrc.errors import ProjectionError
    from evsrc.projection.projector import Projector
    from evsrc.records import Checkpoint, Committed
    from evsrc.store import EventStore
    from evsrc.telemetry import Telemetry

__all__ = ["ProjectionRunner"]


class ProjectionRunner(StorageSteps):
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
        name = _check(
            projector,
            name,
            on_failure,
            save_skipped_every=save_skipped_every,
            batch_size=batch_size,
            max_batch_latency=max_batch_latency,
            retry_initial=retry_initial,
            retry_max=retry_max,
            standby_interval=standby_interval,
            parked_poll=parked_poll,
        )
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
        #: Set by :func:`evsrc.telemetry.instrument`: spans and metrics per batch.
        self.telemetry: Telemetry | None = None
        #: Who is active: an in-process lease here; backends bring their own.
        self.lease: LeaseKeeper = InMemoryLease(self)
        self.waits = Waits(self)
        self.progress = Progress(self)
        self.applier = BatchApplier(self)
        self._loop = FeedLoop(self)
        self._saved: Checkpoint | None = None
        self._loaded = False
        self._running = False
        self._stopping = False
        self._stopped: anyio.Event | None = None

    # -- running ------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Stand by until active, catch up, then follow live commits, until :meth:`stop`.

        Faults are retried forever; raises ``ProjectionError`` when the
        projector fails, and errors that retrying cannot cure
        (``SchemaError``, ``StoreClosedError``) as they are.
        """
        async with Session(self):
            self._stopped = anyio.Event()
            task_status.started()
            try:
                await self._loop.serve()
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
        async with Session(self):
            return await self._loop.catch_up()

    async def stop(self) -> None:
        """Finish the batch in hand, save its checkpoint and make ``run()`` return.

        Returns once it has; at once if the runner is not running.
        """
        stopped = self._stopped
        if not self._running or stopped is None or stopped.is_set():
            return
        self._stopping = True
        self.waits.interrupt()
        await stopped.wait()

    def running(self) -> AbstractAsyncContextManager[ProjectionRunner]:
        """``async with runner.running():`` — run in the background; stop on exit.

        Raises, on exit, the error that stopped the runner (``ProjectionError``
        or an error that retrying cannot cure).
        """
        return background(self)

    async def load_checkpoint(self) -> Checkpoint | None:
        """Read the saved checkpoint (done by ``run``/``catch_up``; call to inspect it first)."""
        self.checkpoint = self._saved = await self._load()
        self._loaded = True
        self.progress.notify()
        return self.checkpoint

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

    async def replay_parked(self) -> int:
        """Handle again the parked events whose replay was requested; how many succeeded.

        Called by the active runner when it sees a request (``python -m evsrc
        parked replay``); call it directly to replay at once. Each request is
        handled once: a success is recorded as ``replayed``, a failure as
        ``failed`` (the event stays parked). Other events are not touched.
        """
        return await self.applier.replay_parked()

    # -- waiting and lag ----------------------------------------------------------------

    def reached(self, checkpoint: Checkpoint | Committed) -> bool:
        """Whether the projection has processed everything up to ``checkpoint``."""
        return self.progress.reached(checkpoint)

    async def wait_until(self, checkpoint: Checkpoint | Committed) -> None:
        """Return once the projection has processed ``checkpoint`` (or a ``Committed``).

        Raises the runner's ``ProjectionError`` if it failed. Bound the wait
        with ``anyio.fail_after`` (or ``asyncio.timeout``).
        """
        await self.progress.wait_until(checkpoint)

    async def head(self) -> Checkpoint | None:
        """The checkpoint of the last committed event this projection reads (``None``: none).

        Reads the events after the runner's checkpoint; backends override it
        with a direct look-up.
        """
        return await self.progress.read_head()

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
        return await self.progress.lag(limit=limit)


def _check(projector: Projector, name: object, on_failure: object, **numbers: float) -> str:
    """Check the runner's arguments; its name."""
    if not isinstance(name, str) or not name:
        msg = "a projection needs a name: set Projector.name or pass name="
        raise InvalidInputError(msg, argument="name", value=name)
    if projector.event_types() == []:
        msg = (
            f"projector {name!r} handles no event type: mark its methods with "
            "@handles(...), or override wants() and handle()"
        )
        raise InvalidInputError(msg, argument="projector", value=projector)
    for argument, low, integer in _NUMBERS:
        check_number(numbers[argument], argument, low=low, integer=integer)
    if on_failure is not None and not isinstance(on_failure, FailurePolicy):
        msg = f"on_failure must be a FailurePolicy, got {type(on_failure).__name__}"
        raise InvalidInputError(msg, argument="on_failure", value=on_failure)
    return name


#: The runner's numeric options: (argument, lowest value, whether an int).
_NUMBERS: tuple[tuple[str, float, bool], ...] = (
    ("save_skipped_every", 1, True),
    ("batch_size", 1, True),
    ("max_batch_latency", 0, False),
    ("retry_initial", 0.001, False),
    ("retry_max", 0.001, False),
    ("standby_interval", 0.001, False),
    ("parked_poll", 0.001, False),
)
