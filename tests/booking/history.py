"""Check a booking stream's whole history against the rules, commit by commit.

This replays the raw stored events with a plain reference model — not the
aggregate under test — and asserts the invariants after every append (events
of one append share a commit), so a rule broken at any moment in the past is
caught, not only one visible at the end.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING

import anyio.lowlevel

from evsrc.memory import InMemoryEventStore

if TYPE_CHECKING:
    from evsrc.store import EventStore


class InterleavingStore(InMemoryEventStore):
    """The in-memory store with scheduling points around reads and appends.

    The plain in-memory store never yields inside ``read`` or
    ``append_expect``, so concurrent tasks on it run one after another. This
    one yields 0–2 times before and after each (seeded, so reproducible), as
    a network round trip would, so that concurrent commands really interleave:
    they observe the same state, race, and conflict.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self._rng = random.Random(seed)

    async def _yield(self) -> None:
        for _ in range(self._rng.randint(0, 2)):
            await anyio.lowlevel.checkpoint()

    async def read(self, stream, *, after=0, limit=None, backwards=False):
        await self._yield()
        events = await super().read(stream, after=after, limit=limit, backwards=backwards)
        await self._yield()
        return events

    async def append_expect(self, stream, expected, events):
        await self._yield()
        result = await super().append_expect(stream, expected, events)
        await self._yield()
        return result


@dataclass
class Replayed:
    capacity: int | None = None
    roster: list[str] = field(default_factory=list)
    waitlist: list[str] = field(default_factory=list)
    ever_booked: set[str] = field(default_factory=set)
    appends: int = 0


async def checked_history(store: EventStore, occurrence: str, capacity: int | None = None):
    """Replay ``booking:<occurrence>`` and assert every rule after every append."""
    events = await store.read(f"booking:{occurrence}")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    state = Replayed(capacity=None)
    for _commit, group in groupby(events, key=lambda e: e.checkpoint.commit):
        batch = list(group)
        state.appends += 1
        cancelled_here: list[str] = []
        for ev in batch:
            actor = ev.data.get("actor")
            if ev.type == "scheduled":
                assert state.capacity is None, "scheduled twice"
                assert len(state.roster) <= ev.data["capacity"]
                state.capacity = ev.data["capacity"]
            elif ev.type == "booking":
                assert actor not in state.roster, f"{actor} booked twice"
                assert actor not in state.waitlist, f"{actor} booked while waitlisted"
                state.roster.append(actor)
                state.ever_booked.add(actor)
            elif ev.type == "waitlisted":
                assert state.capacity is not None, "waitlist on an unscheduled occurrence"
                assert len(state.roster) == state.capacity, "waitlisted while seats were free"
                assert actor not in state.roster and actor not in state.waitlist
                state.waitlist.append(actor)
            elif ev.type == "cancellation":
                if actor in state.roster:
                    state.roster.remove(actor)
                    cancelled_here.append(actor)
                else:
                    assert actor in state.waitlist, f"cancelled {actor} who held nothing"
                    state.waitlist.remove(actor)
            elif ev.type == "promotion":
                assert state.waitlist and state.waitlist[0] == actor, "promoted out of turn"
                assert cancelled_here, "promotion without a cancellation in the same append"
                cancelled_here.pop()
                state.waitlist.pop(0)
                state.roster.append(actor)
                state.ever_booked.add(actor)
            else:
                raise AssertionError(f"unexpected event type {ev.type!r}")
        cap = state.capacity if state.capacity is not None else capacity
        if cap is not None:
            assert len(state.roster) <= cap, f"roster {len(state.roster)} > capacity {cap}"
        if state.waitlist:
            assert cap is not None and len(state.roster) == cap, "waitlist while seats free"
        assert len(set(state.roster)) == len(state.roster)
        assert not set(state.roster) & set(state.waitlist)
    return state
