"""The handler's decide → append rounds, and what follows an append's answer.

:class:`CommandHandler` (:mod:`evsrc.handler`) builds on this: it checks its
arguments and turns calls into :class:`~evsrc.deciding.Command` objects; the
loop here decides them on observed state, appends, and on a conflict decides
again, handing unfinished work back to the stream's lane when cancelled.
"""

from __future__ import annotations

from asyncio import _get_running_loop
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

from evsrc.aggregate import Aggregate
from evsrc.deciding import Attempt, Command, decide_batch, finish_all
from evsrc.errors import StoreUnavailableError
from evsrc.records import Committed, Conflict
from evsrc.riding import ride

if TYPE_CHECKING:
    from evsrc.cache import StateCache
    from evsrc.lanes import Lane, Lanes
    from evsrc.models import EventRegistry
    from evsrc.records import NewEvent, RecordedEvent
    from evsrc.retry import RetryPolicy
    from evsrc.store import EventStore

__all__ = ["HandlerLoop"]

A = TypeVar("A", bound=Aggregate)

#: How many waiting commands one loop callback decides as riders of an append
#: in flight (more wait for the next callback: other tasks run in between).
_RIDERS_PER_PASS = 256


class HandlerLoop(Generic[A]):
    """The retry loop of a command handler; the subclass sets the attributes below."""

    store: EventStore
    registry: EventRegistry
    retry: RetryPolicy
    optimistic: bool
    _cache: StateCache[A]
    _lanes: Lanes

    async def _read(self, stream: str, after: int) -> list[RecordedEvent]:
        # The store first, the retry policy only once it failed (as for appends:
        # the usual read then costs one coroutine less).
        try:
            return await self.store.read(stream, after=after)
        except StoreUnavailableError as exc:
            return await self.retry.read(self.store, stream, after, failed=exc)

    async def _append(
        self, stream: str, expected: int, new: list[NewEvent]
    ) -> Committed | Conflict:
        return await self.retry.append(self.store, stream, expected, new)

    async def _run(self, stream: str, commands: list[Command], lane: Lane | None) -> None:
        """Decide and append ``commands`` together until each has an outcome or an error.

        With a ``lane`` (batching), a cancellation hands the unfinished
        commands back to the lane: to its queue, or as its ``inflight``
        attempt when the append was left unanswered.
        """
        live = commands
        for c in commands:  # (a lane hands over no finished command: no copy then)
            if c.done:
                live = [c for c in commands if not c.done]
                break
        att: Attempt | None = None
        appending = False
        # The first round may decide on the cached state unread; append_expect checks it.
        trust_cache = self.optimistic and self._cache.enabled
        # A provisional round that appends nothing, waiting for the read that confirms it.
        unconfirmed: Attempt | None = None
        # Set once a round was sent back to read for commands queued after its own
        # read went out: the read that confirms it absorbs no more commands.
        recheck = False
        try:
            while live:
                if trust_cache:
                    # StateCache.peek, inline on the cache's own dict (a call less
                    # per command): the cached state, marked recently used.
                    states = self._cache._states
                    cached = states.get(stream)
                    if cached is not None:
                        states.move_to_end(stream)
                    trust_cache = False
                else:
                    cached = None
                provisional = cached is not None
                if cached is not None:
                    state = cached
                else:
                    # Every command queued so far was queued before this read is sent.
                    mark = self._lanes.enqueued
                    try:
                        state = await self._cache.observe(stream)
                    except Exception as exc:
                        finish_all(live, exc)
                        return
                    if unconfirmed is not None:
                        if state is unconfirmed.base and state.seq == unconfirmed.expected:
                            # The read found nothing new: the decisions taken on the
                            # cached state stand as they are (no second decision).
                            unconfirmed.finish_unwritten(stream)
                            if lane is not None:
                                # That state was current at a moment after every
                                # command queued up to the mark: such a command may be
                                # answered from it as well (the moment lies between
                                # its arrival and its answer), with no read of its own.
                                lane.confirmed = state
                                lane.confirmed_seq = state.seq
                                lane.confirmed_mark = mark
                            return
                        # The stream moved: that round does not count as an attempt.
                        unconfirmed.uncount()
                        unconfirmed = None
                    if lane is not None and lane.queue and not recheck:
                        # Commands queued while the read was out: decide them now,
                        # on the state just read, rather than in another round trip
                        # (if they write nothing, that read cannot answer them: below).
                        live = self._lanes.absorb(lane, live)
                att = decide_batch(self.registry, live, state, provisional=provisional)
                if att is None or (provisional and not att.new):
                    if (
                        att is not None
                        and lane is not None
                        and lane.confirmed is state
                        and live[-1].ticket <= lane.confirmed_mark  # (usually the last queued)
                        and state.seq == lane.confirmed_seq
                    ):
                        # Decided on the very state an earlier read confirmed: it stands
                        # if each command was queued before that read was sent.
                        mark = lane.confirmed_mark
                        for c in live:
                            if c.ticket > mark:
                                break
                        else:
                            att.finish_unwritten(stream)
                            return
                    # Nothing to append means nothing confirms the cached state:
                    # read; if the stream moved, decide again on caught-up state.
                    unconfirmed = att
                    att = None
                    continue
                if not att.new:
                    if lane is not None and not recheck and any(c.ticket > mark for c in live):
                        # Some were queued after the read was sent: another writer
                        # may have moved the stream before they arrived. Read again
                        # (it answers them all if nothing moved).
                        unconfirmed = att
                        att = None
                        recheck = True
                        continue
                    att.finish_unwritten(stream)
                    return
                appending = True
                # Every command queued so far was queued before this append is sent.
                sent_mark = self._lanes.enqueued
                if lane is not None and lane.queue:
                    # Commands wait behind this append: while it is in flight, those
                    # queued before it is sent may be decided on the state it makes
                    # (evsrc.riding), in callbacks that run while this task waits.
                    loop = _get_running_loop()
                    if loop is not None:
                        att.mark = sent_mark
                        loop.call_soon(self._ride, lane, att)
                try:
                    # The store first, the retry policy only once it failed (the
                    # usual append then costs one coroutine less).
                    try:
                        r = await self.store.append_expect(stream, att.expected, att.new)
                    except StoreUnavailableError as exc:
                        r = await self.retry.append(
                            self.store, stream, att.expected, att.new, failed=exc
                        )
                    finally:
                        att.mark = 0  # riding ends with the append's answer, or its failure
                except Exception as exc:
                    finish_all([d.command for d in att.decided], exc)
                    if lane is not None:
                        lane.requeue(att.take_riders())
                    return
                appending = False
                if isinstance(r, Committed):
                    self._committed(stream, att, r)
                    if lane is not None:
                        # The state it made was current at its commit, a moment after
                        # every command queued before it was sent: like a confirming
                        # read, it answers those that write nothing (above).
                        cached = self._cache._states.get(stream)
                        if cached is not None and cached.seq == r.last_seq:
                            lane.confirmed = cached
                            lane.confirmed_seq = r.last_seq
                            lane.confirmed_mark = sent_mark
                    if self._cache.snapshots is not None:
                        await self._cache.maybe_snapshot(stream)
                    return
                live = self._after_conflict(stream, att)
                att = None
                if live and not provisional:
                    # (After a stale cache, the conflict is news already read: no pause.)
                    await anyio.sleep(self.retry.pause(max(c.attempts for c in live)))
        except BaseException:
            if unconfirmed is not None:
                # Interrupted while confirming: that round does not count either.
                unconfirmed.uncount()
            if lane is not None:
                if appending and att is not None:
                    lane.inflight = att
                else:
                    lane.requeue([c for c in live if not c.done and not c.abandoned])
            raise

    def _ride(self, lane: Lane, att: Attempt) -> None:
        """A loop callback while ``att``'s append is in flight: let waiting commands ride it."""
        if ride(self.registry, lane.queue, att, _RIDERS_PER_PASS) and att.mark:
            # More wait: the next share in another callback (the loop stays responsive).
            loop = _get_running_loop()
            if loop is not None:
                loop.call_soon(self._ride, lane, att)

    def _committed(self, stream: str, att: Attempt, committed: Committed) -> None:
        """Deliver outcomes of a committed attempt and fold its events into the cache."""
        events = att.deliver(stream, committed)
        att.finish_riders(stream)
        self._cache.committed(stream, att.expected, att.work, events, committed.last_seq)

    def _after_conflict(self, stream: str, att: Attempt) -> list[Command]:
        """Commands to decide again after a conflict (its riders too, last); the others
        exhausted their attempts."""
        return att.after_conflict(stream, self.retry.max_attempts) + att.take_riders()

    async def _settle(self, stream: str, lane: Lane, att: Attempt) -> None:
        """Learn the outcome of an append a cancelled leader left unanswered."""
        try:
            r = await self._append(stream, att.expected, att.new)
        except Exception as exc:
            finish_all([d.command for d in att.decided if not d.command.abandoned], exc)
            lane.requeue(att.take_riders())
            return
        except BaseException:
            lane.inflight = att
            raise
        if isinstance(r, Committed):
            self._committed(stream, att, r)
            return
        lane.requeue(self._after_conflict(stream, att))
