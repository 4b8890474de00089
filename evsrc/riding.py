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
    """The state once ``att`` commits (``att.work`` from then on), or None if it cannot be built."""
    work = att.work
    decided = att.decided
    if work is not None and not decided[-1].events:
        return work  # (it holds every event but the last decision's: there are none)
    try:
        ahead = att.base.clone()
        for d in decided:
            if d.events:
                ahead.apply_new(d.events)
    except Exception:
        return None
    att.work = ahead  # every event applied: the cache takes it as it is
    return ahead
