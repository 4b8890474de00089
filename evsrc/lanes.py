"""Per-stream batching lanes: commands on a hot stream queue up and are committed together.

While an append for a stream is in flight, the stream's other commands wait in
its :class:`Lane`. One caller at a time *leads* the lane: it takes up to
``max_batch`` queued commands, has them decided and appended together (by the
``run`` callback), and when its own command has its outcome hands the lead to
the next waiting caller.

Cancellation: a caller cancelled while queued leaves the queue. When the
cancelled caller was leading, the next waiting caller takes over; if the
append's outcome was left unknown (the lane's ``inflight`` attempt), it first
re-sends the same events to learn it (the ``settle`` callback), so that every
other caller still gets its real outcome.
"""

from __future__ import annotations

from asyncio import _get_running_loop, get_running_loop
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from evsrc.deciding import wake_up

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from evsrc.aggregate import Aggregate
    from evsrc.deciding import Attempt, Command

__all__ = ["Lane", "Lanes"]


@dataclass(eq=False, slots=True)
class Lane:
    """A stream's queue of commands waiting for the append in flight."""

    queue: deque[Command] = field(default_factory=deque)
    busy: bool = False
    #: An append whose outcome a cancelled leader left unknown.
    inflight: Attempt | None = None
    #: The state a read found current (the stream unchanged since it was
    #: cached), with its seq then, and :attr:`Lanes.enqueued` before that read
    #: was sent: every command queued up to that mark may be answered from that
    #: very state while it stays as it was (see ``HandlerLoop._run``).
    confirmed: Aggregate | None = None
    confirmed_seq: int = 0
    confirmed_mark: int = 0

    def requeue(self, commands: list[Command]) -> None:
        """Put unfinished commands back at the head of the queue, in order."""
        self.queue.extendleft(reversed(commands))


class Lanes:
    """The lanes of every stream with commands in flight.

    ``run(stream, batch, lane)`` decides and appends a batch until each of its
    commands is done (handing unfinished ones back to the lane when
    cancelled); ``settle(stream, lane, attempt)`` learns the outcome of an
    append a cancelled leader left unanswered.
    """

    def __init__(
        self,
        max_batch: int,
        run: Callable[[str, list[Command], Lane], Awaitable[None]],
        settle: Callable[[str, Lane, Attempt], Awaitable[None]],
    ) -> None:
        self.max_batch = max_batch
        self._run = run
        self._settle = settle
        self._lanes: dict[str, Lane] = {}
        self._spare: Lane | None = None
        #: How many commands were ever queued: each gets the count as its ``ticket``.
        self.enqueued = 0

    def __len__(self) -> int:
        """How many streams have a lane (commands queued or in flight)."""
        return len(self._lanes)

    async def execute(self, stream: str, command: Command) -> None:
        """Queue ``command`` on its stream's lane and return once it is done."""
        lane = self._lanes.get(stream)
        if lane is None:
            lane = self._spare
            if lane is None:
                lane = Lane()
            else:
                self._spare = None
                lane.confirmed = None  # (another stream's, or a past one: let it go)
            self._lanes[stream] = lane
        n = command.ticket = self.enqueued + 1
        self.enqueued = n
        lane.queue.append(command)
        if not lane.busy:
            lane.busy = True
            command.lead = True
        try:
            while not command.done:
                if command.lead:
                    # Leading: run batches until this command has its outcome, then
                    # hand off (inline: its own coroutine would cost a frame per command).
                    deferred = False
                    try:
                        while not command.done:
                            att = lane.inflight
                            if att is not None:
                                lane.inflight = None
                                await self._settle(stream, lane, att)
                                continue
                            queue = lane.queue
                            if len(queue) == 1 and queue[0] is command:
                                batch = [queue.popleft()]  # alone: the usual uncontended case
                            else:
                                batch = self.absorb(lane, [])
                            if not batch:  # pragma: no cover - always queued or inflight
                                msg = "command neither queued nor in flight"
                                raise AssertionError(msg)
                            await self._run(stream, batch, lane)
                            if command.done and len(batch) > 1:
                                # Contended: the callers just answered usually come
                                # straight back with their next command. Holding the
                                # lead for one pass of the event loop queues them here,
                                # so the next batch takes them all, instead of the first
                                # back committing alone while the others queue behind
                                # it. Under asyncio the lane's hand-off waits for that
                                # pass in a callback queued behind their wake-ups (this
                                # caller returns at once); else a shielded checkpoint:
                                # the outcome is ours.
                                loop = _get_running_loop()
                                if loop is not None:
                                    loop.call_soon(self._hand_off_later, stream, lane)
                                    deferred = True
                                else:
                                    await anyio.lowlevel.cancel_shielded_checkpoint()
                    except BaseException:
                        command.abandoned = True
                        raise
                    finally:
                        command.lead = False
                        if deferred:
                            pass
                        elif lane.queue or lane.inflight is not None:
                            self._hand_off(lane)
                        else:
                            lane.busy = False  # _hand_off's answer when nobody waits
                else:
                    # No await between queueing and here: nobody can have
                    # tried to wake this caller before its event exists.
                    try:
                        fut = command.wake = get_running_loop().create_future()
                    except RuntimeError:  # not asyncio (trio)
                        event = command.wake = anyio.Event()
                        await event.wait()
                    else:
                        await fut
                    command.wake = None
        except BaseException:
            self._abandon(lane, command)
            raise
        finally:
            if not lane.busy and not lane.queue and lane.inflight is None:
                if self._lanes.get(stream) is lane:
                    del self._lanes[stream]
                    # An idle lane is as new: keep one for the next idle stream.
                    self._spare = lane

    def _hand_off_later(self, stream: str, lane: Lane) -> None:
        """The deferred hand-off of a leader that returned: lead on, or retire the lane."""
        self._hand_off(lane)
        if not lane.busy and not lane.queue and lane.inflight is None:
            if self._lanes.get(stream) is lane:
                del self._lanes[stream]
                self._spare = lane

    def _abandon(self, lane: Lane, command: Command) -> None:
        """A cancelled caller: leave the queue, and pass on the lead if it had it."""
        command.abandoned = True
        try:
            lane.queue.remove(command)
        except ValueError:
            pass
        if command.lead:
            command.lead = False
            self._hand_off(lane)

    def absorb(self, lane: Lane, batch: list[Command]) -> list[Command]:
        """``batch`` plus the lane's queued commands, up to ``max_batch`` in all."""
        queue = lane.queue
        out = list(batch)
        while queue and len(out) < self.max_batch:
            c = queue.popleft()
            if not c.done and not c.abandoned:
                out.append(c)
        return out

    @staticmethod
    def _hand_off(lane: Lane) -> None:
        """Make a waiting caller the stream's leader, or mark the stream idle."""
        candidates: Iterable[Command] = lane.queue
        if lane.inflight is not None:
            candidates = [d.command for d in lane.inflight.decided]
            candidates.extend(d.command for d in lane.inflight.riders or ())
            candidates.extend(lane.queue)
        for c in candidates:
            if not c.done and not c.abandoned:
                c.lead = True
                wake_up(c.wake)
                return
        lane.inflight = None
        lane.busy = False
