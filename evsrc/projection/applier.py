"""Batches through a projector under its failure policy: retry, stop, or park and go on.

The runner's storage steps (``_process_batch``, ``_save_skipped``, ``_replay``)
do the writing; this decides what to hand them, and what happens when the
projector raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from evsrc.errors import InvalidInputError, ProjectionError
from evsrc.parking import PARKED_PREFIX
from evsrc.projection.progress import CATCHING_UP
from evsrc.projection.projector import overrides_handle_batch

if TYPE_CHECKING:
    from evsrc.projection.runner import ProjectionRunner
    from evsrc.records import RecordedEvent

__all__ = ["BatchApplier"]


class _StopRequestedError(Exception):
    """stop() came while a failing event waited for its retry (internal)."""


class BatchApplier:
    """Applies a runner's batches: wanted events to the projector, the rest skipped."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self._runner = runner
        #: Skipped events whose checkpoint is not saved yet.
        self.unsaved = 0
        #: Set when a replay of parked events was requested (seen by the watcher).
        self.parked_dirty = False
        self._parked_seen = -1

    async def commit(self, batch: list[RecordedEvent]) -> int:
        """Process one batch: its wanted events through the hooks, the rest skipped."""
        r = self._runner
        cp = r.checkpoint
        if cp is not None:
            batch = [e for e in batch if e.checkpoint > cp]  # a feed overlapping a restart
        if not batch:
            return 0
        wants = r.projector.wants
        if self._raw:
            wanted = [e for e in batch if wants(e) and not e.stream.startswith(PARKED_PREFIX)]
        else:
            wanted = [e for e in batch if wants(e)]
        if wanted:
            telemetry = r.telemetry
            try:
                if telemetry is None:
                    await self._handle_wanted(wanted)
                else:
                    with telemetry.projection_batch(r.name, wanted):
                        await self._handle_wanted(wanted)
            except _StopRequestedError:
                self.unsaved = 0
                r.progress.notify()
                return 0
            # Skipped events after the last handled one are counted as unsaved.
            self.unsaved = sum(1 for e in batch if e.checkpoint > wanted[-1].checkpoint)
        else:
            self.unsaved += len(batch)
        if self.unsaved >= r.save_skipped_every:
            await r._save_skipped(batch[-1].checkpoint)
            self.unsaved = 0
        r.checkpoint = batch[-1].checkpoint
        r.progress.notify()
        return len(batch)

    async def flush(self) -> None:
        """Save the checkpoint of skipped events not saved yet."""
        r = self._runner
        if self.unsaved and r.checkpoint is not None:
            await r._save_skipped(r.checkpoint)
            self.unsaved = 0

    async def _handle_wanted(self, wanted: list[RecordedEvent]) -> None:
        """Process the wanted events of a batch under the failure policy."""
        r = self._runner
        try:
            await r._process_batch(wanted)
        except ProjectionError as exc:
            policy = r.on_failure
            if policy.retries == 0 and policy.then == "stop":
                await self._fail(exc, wanted)
                raise
            await self._recover(exc, wanted)

    @property
    def _raw(self) -> bool:
        """Whether the feed is unfiltered by type (then parked streams are skipped here)."""
        return self._runner.projector.event_types() is None

    async def _recover(self, exc: ProjectionError, wanted: list[RecordedEvent]) -> None:
        """A batch failed under a retrying or parking policy: commit what came before, then
        take the rest one event at a time (so a batch handler's poison is isolated)."""
        r = self._runner
        failed = exc.event
        done = r.checkpoint
        rest = [e for e in wanted if done is None or e.checkpoint > done]
        if failed is not None:
            before = [e for e in rest if e.checkpoint < failed.checkpoint]
            if before:
                await r._process_batch(before)
                rest = rest[len(before) :]
        # Per-event handlers name the event that failed: that was its first attempt.
        tried = failed is not None and not overrides_handle_batch(r.projector)
        for recorded in rest:
            if tried and recorded.checkpoint == failed.checkpoint:
                await self._one(recorded, exc)
            else:
                await self._one(recorded, None)

    async def _one(self, recorded: RecordedEvent, error: ProjectionError | None) -> None:
        """Handle one event under the failure policy: retry, then stop or park it.

        ``error``: the failure of a first attempt already made, if any.
        """
        r = self._runner
        policy = r.on_failure
        attempts = 0 if error is None else 1
        while True:
            if error is not None:
                if attempts > policy.retries:
                    if policy.then == "park":
                        await self._park(recorded, error, attempts)
                        return
                    r.failed = error
                    r.progress.notify()
                    raise error
                r.state = f"retrying {recorded.stream}#{recorded.seq}: {error.cause!r}"
                await r.waits.pause(policy.delay(attempts))
                if r._stopping or r.lease.lost():
                    raise _StopRequestedError from error
            try:
                await r._process_batch([recorded])
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
        r = self._runner
        cause = exc.cause if exc.cause is not None else exc
        await r.parked.park(recorded, cause, attempts)
        await r._save_skipped(recorded.checkpoint)
        r.checkpoint = recorded.checkpoint
        r.state = CATCHING_UP

    async def _fail(self, exc: ProjectionError, wanted: list[RecordedEvent]) -> None:
        """The projector failed: commit the batch's events before the failed one, then stop."""
        r = self._runner
        failed = exc.event
        done = r.checkpoint
        before = [
            e
            for e in wanted
            if failed is not None
            and e.checkpoint < failed.checkpoint
            and (done is None or e.checkpoint > done)
        ]
        if before:
            await r._process_batch(before)
            r.checkpoint = before[-1].checkpoint
        r.failed = exc
        r.progress.notify()

    # -- parked events -------------------------------------------------------------

    async def watch_parked(self) -> None:
        """While active, look for replay requests every ``parked_poll`` seconds."""
        r = self._runner
        while True:
            try:
                seen = await r.store.last_seq(r.parked.stream)
            except Exception:  # a fault: the next poll tries again
                seen = self._parked_seen
            if seen != self._parked_seen:
                self._parked_seen = seen
                self.parked_dirty = True
                r.waits.interrupt()
            await anyio.sleep(r.parked_poll)

    async def replay_parked(self) -> int:
        """Handle again the parked events whose replay was requested; how many succeeded."""
        r = self._runner
        done = 0
        for p in await r.parked.pending():
            if p.status != "replay requested":
                continue
            try:
                recorded = await r.parked.original(p)
            except InvalidInputError as exc:
                await r.parked.failed(p, exc)
                continue
            try:
                await r._replay(recorded, p.number)
            except Exception as exc:
                if r._is_fault(exc):
                    raise
                await r.parked.failed(p, exc)
                continue
            await r.parked.replayed(p)
            done += 1
        return done
