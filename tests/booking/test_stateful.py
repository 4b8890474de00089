"""Random bursts of concurrent book / waitlist / cancel, checked after every burst.

Each step fires several operations at once (an anyio task group) through two
services that share one store (the in-memory store with scheduling points, so
that the operations interleave) — two handlers with their own caches and
batches, so they really race and conflict — then replays the whole stream
with the reference checker and compares it with what the callers were told.
"""

from __future__ import annotations

import anyio
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from examples.booking import BookingService, BookingStatus, CancelStatus, seat_of
from tests.booking.history import InterleavingStore, checked_history

ACTORS = [f"p{i}" for i in range(8)]
OCC = "stateful"

operation = st.tuples(
    st.sampled_from(["book", "waitlist", "cancel"]),
    st.sampled_from(ACTORS),
    st.integers(0, 1),  # which service
)


class ConcurrentBooking(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._portal_cm = start_blocking_portal("asyncio")
        self.portal = self._portal_cm.__enter__()
        self.store = InterleavingStore()
        self.services = [
            BookingService(self.store, max_attempts=1000),
            BookingService(self.store, max_attempts=1000, batching=False),
        ]
        self.capacity = 0

    def teardown(self) -> None:
        self._portal_cm.__exit__(None, None, None)

    @initialize(capacity=st.integers(1, 4))
    def schedule(self, capacity: int) -> None:
        self.capacity = capacity
        self.portal.call(self.services[0].schedule, OCC, capacity)

    @rule(ops=st.lists(operation, min_size=1, max_size=8))
    def burst(self, ops: list[tuple[str, str, int]]) -> None:
        results: list[tuple[str, str, object]] = []

        async def one(kind: str, actor: str, which: int) -> None:
            svc = self.services[which]
            if kind == "cancel":
                results.append((kind, actor, await svc.cancel(OCC, actor)))
            else:
                r = await svc.book(OCC, actor=actor, waitlist=kind == "waitlist")
                results.append((kind, actor, r))

        async def fire() -> None:
            async with anyio.create_task_group() as tg:
                for op in ops:
                    tg.start_soon(one, *op)

        self.portal.call(fire)
        state = self.portal.call(checked_history, self.store, OCC)
        cancelled = {actor for kind, actor, _ in ops if kind == "cancel"}
        for kind, actor, r in results:
            if kind == "cancel":
                if r.status is CancelStatus.CANCELLED:
                    assert actor in state.ever_booked
                    if r.promoted is not None:
                        assert r.promoted in state.ever_booked
                        assert 1 <= r.promoted_seat <= self.capacity
                elif r.status is CancelStatus.ABSENT:
                    pass
                continue
            assert r.status is not BookingStatus.CONFLICT  # book() always resolves conflicts
            if r.status in (BookingStatus.BOOKED, BookingStatus.ALREADY):
                assert 1 <= r.seat <= self.capacity
                assert actor in state.ever_booked  # a real booking, earlier or now
                if actor not in cancelled:
                    assert seat_of(state.roster, actor) > 0
            elif r.status is BookingStatus.FULL:
                assert kind == "book"
            else:
                # A plain book by someone already waiting reports their place, too.
                assert r.status is BookingStatus.WAITLISTED
                assert r.position >= 1
        standing = [
            r
            for kind, actor, r in results
            if kind != "cancel" and r.status is BookingStatus.BOOKED and actor not in cancelled
        ]
        # Bookings of this burst that no cancel could undo: one per actor, each on the roster.
        assert len({r.actor for r in standing}) == len(standing)
        assert len({seat_of(state.roster, r.actor) for r in standing}) == len(standing)
        for svc in self.services:
            assert self.portal.call(svc.roster, OCC) == state.roster
            assert self.portal.call(svc.waitlist, OCC) == state.waitlist

    @invariant()
    def roster_within_capacity(self) -> None:
        if self.capacity:
            roster = self.portal.call(self.services[1].roster, OCC)
            waitlist = self.portal.call(self.services[1].waitlist, OCC)
            assert len(roster) <= self.capacity
            assert len(set(roster) | set(waitlist)) == len(roster) + len(waitlist)
            assert not waitlist or len(roster) == self.capacity


ConcurrentBooking.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestConcurrentBooking = ConcurrentBooking.TestCase
