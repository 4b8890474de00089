"""BookingService on every backend: the original semantics, the additions, and the races."""

from __future__ import annotations

import anyio
import pytest

from evsrc import InvalidInputError
from examples.booking import (
    AlreadyScheduledError,
    BookingService,
    BookingStatus,
    CancelStatus,
    CapacityMismatchError,
    InvalidBookingError,
    NotScheduledError,
    seat_of,
)
from examples.booking.domain import MAX_ACTOR_LENGTH, MAX_OCCURRENCE_LENGTH
from tests.booking.history import InterleavingStore, checked_history

BOOKED, ALREADY, FULL, CONFLICT, WAITLISTED = (
    BookingStatus.BOOKED,
    BookingStatus.ALREADY,
    BookingStatus.FULL,
    BookingStatus.CONFLICT,
    BookingStatus.WAITLISTED,
)


@pytest.fixture
def svc(any_store):
    return BookingService(any_store)


# -- the original semantics ----------------------------------------------------


async def test_book_already_full_and_the_stream(svc, any_store):
    r = await svc.book("yoga-0900", capacity=2, actor="ann")
    assert (r.status, r.seat, r.capacity) == (BOOKED, 1, 2)
    assert r.status == "booked"  # a str enum
    r = await svc.book("yoga-0900", 2, "bob")
    assert (r.status, r.seat) == (BOOKED, 2)
    r = await svc.book("yoga-0900", 2, "ann")
    assert (r.status, r.seat) == (ALREADY, 1)
    r = await svc.book("yoga-0900", 2, "cat")
    assert (r.status, r.capacity, r.seat) == (FULL, 2, None)
    assert await svc.roster("yoga-0900") == ["ann", "bob"]
    assert await svc.seats_left("yoga-0900", 2) == 0
    assert await svc.seats_left("yoga-0900", 1) == 0  # never below 0
    assert await svc.seats_left("yoga-0900", 5) == 3
    events = await any_store.read("booking:yoga-0900")
    assert [(e.type, e.version, e.data) for e in events] == [
        ("booking", 1, {"actor": "ann"}),
        ("booking", 1, {"actor": "bob"}),
    ]


async def test_seat_of():
    assert seat_of(["ann", "bob"], "ann") == 1
    assert seat_of(["ann", "bob"], "bob") == 2
    assert seat_of(["ann", "bob"], "cat") == 0
    assert seat_of([], "ann") == 0


async def test_empty_occurrence(svc):
    assert await svc.roster("nothing-here") == []
    assert await svc.seats_left("nothing-here", 4) == 4
    assert await svc.waitlist("nothing-here") == []
    assert await svc.capacity("nothing-here") is None


async def test_the_last_seat_race(svc, any_store):
    """Two bookers observe the same free last seat: exactly one booked, one conflict."""
    await svc.book("spin", 3, "ann")
    await svc.book("spin", 3, "bob")
    observed = await svc.roster("spin")
    expected = await any_store.last_seq("booking:spin")
    assert (observed, expected) == (["ann", "bob"], 2)
    results = [None, None]

    async def attempt(i: int, actor: str) -> None:
        results[i] = await svc.book_with_observed("spin", 3, actor, observed, expected)

    async with anyio.create_task_group() as tg:
        tg.start_soon(attempt, 0, "cat")
        tg.start_soon(attempt, 1, "dan")
    assert sorted(r.status for r in results) == [BOOKED, CONFLICT]
    won = next(r for r in results if r.status is BOOKED)
    lost = next(r for r in results if r.status is CONFLICT)
    assert won.seat == 3
    assert lost.actual == 3 and lost.seat is None
    roster = await svc.roster("spin")
    assert roster == ["ann", "bob", won.actor] and len(roster) == 3
    # The loser re-observes: now it is full.
    r = await svc.book_with_observed("spin", 3, lost.actor, roster, 3)
    assert (r.status, r.capacity) == (FULL, 3)
    assert (await svc.book("spin", 3, lost.actor)).status is FULL
    await checked_history(any_store, "spin", 3)


async def test_book_with_observed_sequentially(svc, any_store):
    observed, expected = await svc.roster("solo"), 0
    a = await svc.book_with_observed("solo", 1, "ann", observed, expected)
    b = await svc.book_with_observed("solo", 1, "bob", observed, expected)
    assert (a.status, a.seat) == (BOOKED, 1)
    assert (b.status, b.actual) == (CONFLICT, 1)
    assert await any_store.last_seq("booking:solo") == 1
    # already, from a snapshot that holds the actor
    c = await svc.book_with_observed("solo", 1, "ann", ["ann"], 1)
    assert (c.status, c.seat) == (ALREADY, 1)


async def test_book_with_observed_honours_the_scheduled_capacity(svc):
    await svc.schedule("sched", 2)
    with pytest.raises(CapacityMismatchError):
        await svc.book_with_observed("sched", 5, "ann", [], 1)


# -- many bookers --------------------------------------------------------------


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "unbatched"])
async def test_many_bookers_few_seats(any_store, batching):
    """300 concurrent tasks (150 actors, each twice) on three services for 7 seats."""
    await _many_bookers_few_seats(any_store, batching)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("batching", [True, False], ids=["batched", "unbatched"])
async def test_many_bookers_few_seats_interleaved(batching, seed):
    """The same on an in-memory store that yields like a network: real conflicts."""
    store = InterleavingStore(seed)
    results = await _many_bookers_few_seats(store, batching)
    assert sum(r.attempts - 1 for r in results) > 0  # the race was real: some retried


async def _many_bookers_few_seats(any_store, batching):
    services = [BookingService(any_store, batching=batching, max_attempts=200) for _ in range(3)]
    capacity, results = 7, []

    async def booker(i: int) -> None:
        actor = f"actor-{i % 150:03d}"
        r = await services[i % 3].book("hot", capacity, actor)
        results.append(r)

    async with anyio.create_task_group() as tg:
        for i in range(300):
            tg.start_soon(booker, i)
    roster = await services[0].roster("hot")
    assert len(roster) == capacity == len(set(roster))
    booked = [r for r in results if r.status is BOOKED]
    assert len(booked) == capacity
    # Every booked caller holds a distinct seat, the one it was told, on the final roster.
    assert sorted(r.seat for r in booked) == list(range(1, capacity + 1))
    for r in booked:
        assert seat_of(roster, r.actor) == r.seat
    # Every "already" is a real earlier booking by the same actor, at that seat.
    booked_actors = {r.actor for r in booked}
    for r in results:
        if r.status is ALREADY:
            assert r.actor in booked_actors
            assert seat_of(roster, r.actor) == r.seat
        else:
            assert r.status in (BOOKED, FULL)
    assert sum(r.status is FULL for r in results) == 300 - capacity - sum(
        r.status is ALREADY for r in results
    )
    state = await checked_history(any_store, "hot", capacity)
    assert state.roster == roster
    if not batching:
        assert state.appends == capacity  # one booking per append
    return results


# -- schedule ------------------------------------------------------------------


async def test_schedule_then_book_without_capacity(svc, any_store):
    s = await svc.schedule("yoga", 2)
    assert (s.capacity, s.created) == (2, True)
    s = await svc.schedule("yoga", 2)
    assert s.created is False  # idempotent
    assert await svc.capacity("yoga") == 2
    assert (await svc.book("yoga", actor="ann")).seat == 1
    assert (await svc.book("yoga", 2, "bob")).seat == 2  # the same capacity may be passed
    assert (await svc.book("yoga", actor="cat")).status is FULL
    assert await svc.seats_left("yoga") == 0
    with pytest.raises(CapacityMismatchError) as err:
        await svc.book("yoga", 3, "dan")
    assert isinstance(err.value, InvalidInputError)
    assert (err.value.scheduled, err.value.given, err.value.argument) == (2, 3, "capacity")
    with pytest.raises(CapacityMismatchError):
        await svc.seats_left("yoga", 5)
    with pytest.raises(AlreadyScheduledError):
        await svc.schedule("yoga", 3)
    assert [e.type for e in await any_store.read("booking:yoga")] == [
        "scheduled",
        "booking",
        "booking",
    ]


async def test_unscheduled_without_capacity_is_refused(svc, any_store):
    with pytest.raises(NotScheduledError):
        await svc.book("nowhere", actor="ann")
    with pytest.raises(NotScheduledError):
        await svc.seats_left("nowhere")
    assert await any_store.last_seq("booking:nowhere") == 0


async def test_schedule_after_adhoc_bookings(svc):
    await svc.book("adhoc", 5, "ann")
    await svc.book("adhoc", 5, "bob")
    with pytest.raises(AlreadyScheduledError):
        await svc.schedule("adhoc", 1)  # below the bookings already made
    await svc.schedule("adhoc", 2)
    assert (await svc.book("adhoc", actor="cat")).status is FULL


# -- cancel and the waitlist ---------------------------------------------------


async def test_cancel_shifts_later_seats_down(svc, any_store):
    for a in ("ann", "bob", "cat"):
        await svc.book("pilates", 3, a)
    c = await svc.cancel("pilates", "ann")
    assert (c.status, c.promoted) == (CancelStatus.CANCELLED, None)
    assert await svc.roster("pilates") == ["bob", "cat"]
    assert (await svc.book("pilates", 3, "bob")).seat == 1  # bob moved up from seat 2
    r = await svc.book("pilates", 3, "ann")  # ann may book again: a new seat at the end
    assert (r.status, r.seat) == (BOOKED, 3)
    assert (await svc.cancel("pilates", "zed")).status is CancelStatus.ABSENT
    await checked_history(any_store, "pilates", 3)


async def test_waitlist_promotion_in_the_same_append(svc, any_store):
    await svc.schedule("class", 2)
    await svc.book("class", actor="ann")
    await svc.book("class", actor="bob")
    w = await svc.book("class", actor="cat", waitlist=True)
    assert (w.status, w.position, w.seat) == (WAITLISTED, 1, None)
    w = await svc.join_waitlist("class", "dan")
    assert (w.status, w.position) == (WAITLISTED, 2)
    again = await svc.join_waitlist("class", "cat")
    assert (again.status, again.position) == (WAITLISTED, 1)  # idempotent
    assert (await svc.book("class", actor="eve")).status is FULL  # no waitlist asked
    before = await any_store.last_seq("booking:class")
    c = await svc.cancel("class", "ann")
    assert (c.status, c.promoted, c.promoted_seat) == (CancelStatus.CANCELLED, "cat", 2)
    tail = await any_store.read("booking:class", after=before)
    assert [(e.type, e.data["actor"]) for e in tail] == [
        ("cancellation", "ann"),
        ("promotion", "cat"),
    ]
    assert tail[0].checkpoint.commit == tail[1].checkpoint.commit  # one append
    assert await svc.roster("class") == ["bob", "cat"]
    assert await svc.waitlist("class") == ["dan"]
    assert (await svc.book("class", actor="cat")).seat == 2  # cat is booked now
    c = await svc.cancel("class", "dan")
    assert c.status is CancelStatus.LEFT_WAITLIST
    assert await svc.waitlist("class") == []
    c = await svc.cancel("class", "bob")
    assert (c.status, c.promoted) == (CancelStatus.CANCELLED, None)
    assert await svc.seats_left("class") == 1
    await checked_history(any_store, "class")


async def test_waitlist_books_when_a_seat_is_free(svc):
    await svc.schedule("free", 3)
    r = await svc.join_waitlist("free", "ann")
    assert (r.status, r.seat) == (BOOKED, 1)


async def test_waitlist_needs_a_scheduled_occurrence(svc, any_store):
    await svc.book("adhoc", 1, "ann")
    with pytest.raises(NotScheduledError):
        await svc.book("adhoc", 1, "bob", waitlist=True)
    assert await any_store.last_seq("booking:adhoc") == 1


async def test_cancellations_and_bookings_racing(any_store):
    """Cancels, waitlist joins and bookings at once, on two services: the rules hold."""
    a, b = BookingService(any_store, max_attempts=500), BookingService(any_store, max_attempts=500)
    await a.schedule("churn", 5)
    for i in range(5):
        await a.book("churn", actor=f"early-{i}")

    async def join(i: int) -> None:
        await (a if i % 2 else b).join_waitlist("churn", f"late-{i}")

    async def cancel(i: int) -> None:
        await (b if i % 2 else a).cancel("churn", f"early-{i}")

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(join, i)
        for i in range(5):
            tg.start_soon(cancel, i)
    state = await checked_history(any_store, "churn")
    assert len(state.roster) == 5
    assert len(state.waitlist) == 35
    assert not any(x.startswith("early-") for x in state.roster)
    assert await a.roster("churn") == state.roster == await b.roster("churn")
    assert await b.waitlist("churn") == state.waitlist


# -- validation: typed errors, nothing written -----------------------------------


BAD_NAMES = ["", "   ", "a\x00b", "x" * 10_000, 42, None]
BAD_CAPACITIES = [0, -1, True, 2.0, "3", 10**9]

# Each test loops over its bad values (rather than being parametrised) so that a
# backend pays for one fresh database per test, not one per value.


async def test_bad_occurrence_is_refused(svc, any_store):
    for bad in BAD_NAMES:
        with pytest.raises(InvalidBookingError) as err:
            await svc.book(bad, 3, "ann")
        assert err.value.argument == "occurrence", bad
        assert isinstance(err.value, InvalidInputError)
        for call in (
            svc.cancel(bad, "ann"),
            svc.schedule(bad, 3),
            svc.roster(bad),
            svc.book_with_observed(bad, 3, "ann", [], 0),
        ):
            with pytest.raises(InvalidBookingError):
                await call
    assert [e async for e in any_store.read_all()] == []


async def test_bad_actor_is_refused(svc, any_store):
    for bad in BAD_NAMES:
        with pytest.raises(InvalidBookingError) as err:
            await svc.book("yoga", 3, bad)
        assert err.value.argument == "actor", bad
        with pytest.raises(InvalidBookingError):
            await svc.cancel("yoga", bad)
        with pytest.raises(InvalidBookingError):
            await svc.book_with_observed("yoga", 3, "ann", [bad], 0)
    assert [e async for e in any_store.read_all()] == []


async def test_bad_capacity_is_refused(svc, any_store):
    for bad in BAD_CAPACITIES:
        with pytest.raises(InvalidBookingError) as err:
            await svc.book("yoga", bad, "ann")
        assert err.value.argument == "capacity", bad
        with pytest.raises(InvalidBookingError):
            await svc.schedule("yoga", bad)
        with pytest.raises(InvalidBookingError):
            await svc.book_with_observed("yoga", bad, "ann", [], 0)
        with pytest.raises(InvalidBookingError):
            await svc.seats_left("yoga", bad)
    assert [e async for e in any_store.read_all()] == []


async def test_name_limits_are_inclusive(svc):
    occ, actor = "o" * MAX_OCCURRENCE_LENGTH, "a" * MAX_ACTOR_LENGTH
    assert (await svc.book(occ, 1, actor)).status is BOOKED
    with pytest.raises(InvalidBookingError):
        await svc.book(occ + "o", 1, actor)
    with pytest.raises(InvalidBookingError):
        await svc.book(occ, 1, actor + "a")


async def test_missing_actor_and_bad_expected(svc):
    with pytest.raises(InvalidBookingError) as err:
        await svc.book("yoga", 3)
    assert err.value.argument == "actor"
    with pytest.raises(InvalidBookingError) as err:
        await svc.book_with_observed("yoga", 3, "ann", [], -1)
    assert err.value.argument == "expected"
