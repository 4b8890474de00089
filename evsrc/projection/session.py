"""A runner's session: stand by until active, catch up, then follow live commits.

:class:`Session` admits one ``run``/``catch_up`` at a time; :class:`FeedLoop`
reads the feed in a task, cuts it into batches for the
:class:`~evsrc.projection.applier.BatchApplier`, and retries faults;
:func:`background` is ``runner.running()``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from evsrc.errors import EvsrcError, ProjectionError
from evsrc.projection.lease import _LeaseLostError
from evsrc.projection.progress import CATCHING_UP, RUNNING, STANDBY, STOPPED, closing
from evsrc.projection.waits import INTERRUPTED

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from evsrc.projection.runner import ProjectionRunner
    from evsrc.records import Checkpoint, RecordedEvent

__all__ = ["FeedLoop", "Session", "background"]

#: Seconds without an event after which a runner counts as caught up (``running``).
_IDLE = 0.05


class Session:
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


class FeedLoop:
    """The loop of an active runner: the feed from its checkpoint, in batches."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self._runner = runner
        self._feed_error: BaseException | None = None

    async def serve(self) -> None:
        """Until stopped: take the lease (or stand by), catch up, follow; retry faults."""
        r = self._runner
        while not r._stopping:
            try:
                if not await r.lease.acquire():
                    r.state = STANDBY
                    await r.lease.standby_wait()
                    continue
                try:
                    await self._activate()
                    await self._follow(live=True)
                finally:
                    await r.lease.release()
            except _LeaseLostError:
                # Another runner has moved on: give it the turn.
                r.state = STANDBY
                await r.lease.standby_wait()
            except ProjectionError:
                raise
            except Exception as exc:
                if not r._is_fault(exc):
                    raise
                r.failures += 1
                r.state = f"retrying: {type(exc).__name__}: {exc}"
                await r.waits.pause(r.waits.backoff(r.failures))

    async def catch_up(self) -> int:
        """Wait for the lease, process what is committed now, save; the count processed."""
        r = self._runner
        while not await r.lease.acquire():
            r.state = STANDBY
            await r.lease.standby_wait()
        try:
            await self._activate()
            n = await self._follow(live=False)
            await r.applier.flush()
        finally:
            await r.lease.release()
            r.state = STOPPED
        return n

    async def _activate(self) -> None:
        """Now the active runner: load the checkpoint that the others have left."""
        r = self._runner
        await r.load_checkpoint()
        r.applier.unsaved = 0
        r.state = CATCHING_UP

    def _feed(self, after: Checkpoint | None, live: bool) -> AsyncIterator[RecordedEvent]:
        r = self._runner
        kw = r.feed_filter()
        if live:
            return r.store.subscribe(after, **kw)
        return r.store.read_all(after, **kw)

    async def _read(
        self, after: Checkpoint | None, live: bool, send: MemoryObjectSendStream[RecordedEvent]
    ) -> None:
        async with send:
            try:
                async with closing(self._feed(after, live)) as feed:
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
        r = self._runner
        self._feed_error = None
        send, receive = anyio.create_memory_object_stream["RecordedEvent"](r.batch_size)
        n = 0
        error: Exception | None = None
        async with anyio.create_task_group() as tg, receive:
            tg.start_soon(self._read, r.checkpoint, live, send)
            tg.start_soon(r.lease.watch)
            if r.on_failure.then == "park":
                tg.start_soon(r.applier.watch_parked)
            try:
                n = await self._consume(receive)
            except Exception as exc:  # raised outside, not wrapped in an ExceptionGroup
                error = exc
            finally:
                tg.cancel_scope.cancel()
        r.applier.parked_dirty = False
        if error is not None:
            raise error
        return n

    async def _consume(self, receive: MemoryObjectReceiveStream[RecordedEvent]) -> int:
        r = self._runner
        n = 0
        while not r._stopping:
            if r.lease.lost():
                raise _LeaseLostError
            if r.applier.parked_dirty:
                r.applier.parked_dirty = False
                await r.replay_parked()
            try:
                first = await self._next(receive)
            except anyio.EndOfStream:
                if self._feed_error is not None:
                    raise self._feed_error from None
                return n
            if first is INTERRUPTED:
                continue
            batch = await self._batch(first, receive)
            n += await r.applier.commit(batch)
            r.failures = 0
            if len(batch) >= r.batch_size:
                r.state = CATCHING_UP
            elif not receive.statistics().current_buffer_used:
                r.state = RUNNING  # a short batch and nothing waiting: caught up
        return n

    async def _batch(
        self, first: RecordedEvent, receive: MemoryObjectReceiveStream[RecordedEvent]
    ) -> list[RecordedEvent]:
        """``first`` and what is ready, up to ``batch_size``, waiting ``max_batch_latency``."""
        r = self._runner
        batch: list[RecordedEvent] = [first]
        deadline = anyio.current_time() + r.max_batch_latency
        refilled = False
        while len(batch) < r.batch_size:
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
        return batch

    async def _next(self, receive: MemoryObjectReceiveStream[RecordedEvent]) -> Any:
        """The next event; ``running`` once the feed has had nothing for a moment."""
        r = self._runner
        try:
            return receive.receive_nowait()
        except anyio.WouldBlock:
            pass
        with anyio.move_on_after(_IDLE):
            return await r.waits.interruptible(receive.receive)
        r.state = RUNNING
        return await r.waits.interruptible(receive.receive)


@asynccontextmanager
async def background(runner: ProjectionRunner) -> AsyncIterator[ProjectionRunner]:
    """Run ``runner`` in a task for the body; stop it on exit and raise what stopped it."""
    errors: list[Exception] = []

    async def run(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started: list[bool] = []

        class Status:
            def started(self, value: None = None) -> None:
                started.append(True)
                task_status.started()

        try:
            await runner.run(task_status=Status())
        except Exception as exc:
            errors.append(exc)
            if not started:
                task_status.started()

    body_error: Exception | None = None
    async with anyio.create_task_group() as tg:
        await tg.start(run)
        if not errors:
            try:
                yield runner
            except Exception as exc:  # raised below, not wrapped in an ExceptionGroup
                body_error = exc
            finally:
                await runner.stop()
    if body_error is not None:
        raise body_error
    if errors:
        raise errors[0]
