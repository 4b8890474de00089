"""Riders: waiting commands answered by the append in flight ahead of them.

While a batch's append is in flight, the commands queued behind it before it
was sent are decided, in loop callbacks, on the state it makes current. Those
that write nothing (a refusal, a ``full`` answer, a no-op) leave the queue and
are answered by its commit (:meth:`~evsrc.deciding.Attempt.finish_riders`):
the commit comes after each of them arrived and before it is answered, so the
answer is linearizable. A conflict, an error or an unknown outcome sends them
back to be decided again (:meth:`~evsrc.deciding.Attempt.take_riders`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evsrc.deciding import _decision

if TYPE_CHECKING:
    from collections import deque

    from evsrc.aggregate import Aggregate
    from evsrc.deciding import Attempt, Command
    from evsrc.models import EventRegistry

__all__ = ["ride"]


def ride(registry: EventRegistry, queue: deque[Command], att: Attempt, limit: int) -> bool:
    """Decide queued commands on the state ``att``'s append makes current, while it is in flight.

    Up to ``limit`` commands at the head of ``queue``, in order, each queued
    before the append was sent (``ticket <= att.mark``) and each writing nothing
    (a ``full`` answer, a rejection, a no-op), leave the queue as ``att``'s
    riders: the append's commit answers them (:meth:`Attempt.finish_riders`),
    a moment after each of them arrived and before it is answered. Without
    this they would wait for the append, then for a read to confirm the state.
    Riding stops at the first command that would write, raises, or came later;
    it stays queued for the next batch. Returns whether more may ride.
    """
    mark = att.mark
    if not mark or not queue:
        return False
    ahead = _ahead(att)
    if ahead is None:
        return False
    riders = att.riders
    if riders is None:
        riders = att.riders = []
    n = 0
    while queue:
        c = queue[0]
        if c.done or c.abandoned:
            queue.popleft()
            continue
        if c.ticket > mark or n == limit:
            return n == limit and c.ticket <= mark
        try:
            d = _decision(registry, c, ahead)
        except Exception:
            return False  # decided again in the next batch, where its error is delivered
        if d.events:
            return False
        queue.popleft()
        riders.append(d)
        n += 1
    return False


def _ahead(att: Attempt) -> Aggregate | None:
    """The state once ``att`` commits, or None if it cannot be built.

    It becomes ``att.work``, the batch's private copy, with every event
    applied: what ``StateCache.committed`` would do to it after the commit,
    done earlier (the cache then takes it as it is). Without a copy yet (no
    decision needed one), the state seen is copied first.
    """
    work = att.work
    try:
        if work is None:
            ahead = att.base.clone()
            ahead.apply_new([e for d in att.decided for e in d.events])
        else:
            ahead = work
            applied = work.seq - att.expected
            if applied < len(att.new):
                # (The last decision's events: no later decision needed them.)
                work.apply_new([e for d in att.decided for e in d.events][applied:])
    except Exception:
        # A fold that raises: no riding. A half-changed copy is dropped, and the
        # cache folds the events itself after the commit (and evicts the stream).
        att.work = None
        return None
    att.work = ahead
    return ahead
