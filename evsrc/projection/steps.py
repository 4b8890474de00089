"""The storage steps of a runner: how a batch is handled and its checkpoint saved.

:class:`StorageSteps` is the part of
:class:`~evsrc.projection.ProjectionRunner` that a backend overrides: the
PostgreSQL and SQLite runners handle a batch and save its checkpoint in one
transaction (:meth:`~StorageSteps._process_batch`), replay a parked event
once (:meth:`~StorageSteps._replay`) and know their own faults
(:meth:`~StorageSteps._is_fault`). These defaults work on any
:class:`~evsrc.projection.CheckpointStore`, with at-least-once delivery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsrc.errors import ProjectionError, StoreClosedError, StoreUnavailableError
from evsrc.projection.lease import _LeaseLostError
from evsrc.projection.projector import overrides_handle_batch

if TYPE_CHECKING:
    from evsrc.projection.checkpoints import CheckpointStore
    from evsrc.projection.projector import Projector
    from evsrc.records import Checkpoint, RecordedEvent

__all__ = ["StorageSteps"]


class StorageSteps:
    """Handle wanted events and save checkpoints; the hooks a backend-specific runner overrides.

    ``_saved`` is the checkpoint last saved by this runner: the one a
    conditional save must find in place.
    """

    name: str
    projector: Projector
    checkpoints: CheckpointStore
    checkpoint: Checkpoint | None
    _saved: Checkpoint | None

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

    async def _replay(self, recorded: RecordedEvent, number: int) -> None:
        """Handle a parked event again, outside the feed (transactional backends override)."""
        await self._hand_over([recorded])

    async def _hand_over(self, events: list[RecordedEvent], *context: Any) -> None:
        """Give ``events`` to the projector (``handle_batch`` if it has one, else ``handle``
        per event), with ``context`` (a transactional backend's connection) as last argument."""
        if overrides_handle_batch(self.projector):
            await self.projector.handle_batch(events, *context)
        else:
            for recorded in events:
                await self.projector.handle(recorded, *context)

    async def _apply(self, events: list[RecordedEvent], context: Any) -> None:
        """:meth:`_hand_over` inside a backend's transaction: a handler's failure becomes
        the error that names its event (:meth:`_handler_error`)."""
        if overrides_handle_batch(self.projector):
            try:
                await self.projector.handle_batch(events, context)
            except Exception as exc:
                raise self._handler_error(exc, events[0], context) from exc
            return
        for recorded in events:
            try:
                await self.projector.handle(recorded, context)
            except Exception as exc:
                raise self._handler_error(exc, recorded, context) from exc

    def _handler_error(self, exc: Exception, recorded: RecordedEvent, context: Any) -> Exception:
        """The error to raise when a handler given ``context`` fails (backends may refine it)."""
        return self._projection_error(exc, recorded)

    def _turn_taken(self) -> Exception:
        """The signal that another runner saved a checkpoint first: this one stops and stands by."""
        return _LeaseLostError()

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
