"""Holds on every backend: a hold expires unless confirmed; the expiry promotes the waitlist,
and the person promoted is notified through the outbox, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import pytest

from examples.booking import BookingService
from examples.booking.domain import BookingStatus, ConfirmStatus, InvalidBookingError
from examples.booking.reactions import BookingReactions

if TYPE_CHECKING:
    from evsrc.reactions import OutboxDelivery
    from evsrc.store import EventStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Inbox:
    def __init__(self) -> None:
        self.got: list[OutboxDelivery] = []

    async def deliver(self, message: OutboxDelivery) -> None:
        self.got.append(message)


async def until(check: object, timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not await check():  # type: ignore[operator]
            await anyio.sleep(0.01)


async def test_hold_confirm_and_expiry_promotes_and_notifies(app_store: EventStore) -> None:
    clock = Clock()
    svc = BookingService(app_store, hold_ttl=timedelta(minutes=10), clock=clock)
    inbox = Inbox()
    reactions = BookingReactions(svc, sinks={"notify": inbox}, tick=0.01, outbox_backoff=0.01)
    await svc.schedule("yoga", 2)
    async with reactions.running():
        held = await svc.hold("yoga", "ann")
        assert (held.status, held.seat, held.expires_at) == (
            BookingStatus.HELD,
            1,
            T0 + timedelta(minutes=10),
        )
        assert (await svc.hold("yoga", "ann")).status == BookingStatus.ALREADY
        kept = await svc.hold("yoga", "bob")
        assert (await svc.confirm("yoga", "bob")).status == ConfirmStatus.CONFIRMED
        assert (await svc.confirm("yoga", "bob")).status == ConfirmStatus.ALREADY
        assert kept.seat == 2
        assert (await svc.book("yoga", actor="cy", waitlist=True)).status == "waitlisted"
        assert (await svc.hold("yoga", "dee")).status == BookingStatus.FULL
        await reactions.settle()
        assert await svc.roster("yoga") == ["ann", "bob"]
        clock.now = T0 + timedelta(minutes=11)  # ann's hold runs out; bob's was confirmed

        async def promoted() -> bool:
            return await svc.roster("yoga") == ["bob", "cy"] and len(inbox.got) == 1

        await until(promoted)
        await anyio.sleep(0.1)
        await reactions.settle()
    assert await svc.waitlist("yoga") == []
    (notice,) = inbox.got
    assert (notice.topic, notice.payload) == (
        "waitlist.promoted",
        {"occurrence": "yoga", "actor": "cy"},
    )
    assert (await svc.confirm("yoga", "ann")).status == ConfirmStatus.ABSENT
    types = [e.type for e in await app_store.read("booking:yoga")]
    assert types.count("expiry") == 1 and types.count("promotion") == 1


async def test_expiry_after_a_restart_fires_once(app_store: EventStore) -> None:
    clock = Clock()
    svc = BookingService(app_store, hold_ttl=timedelta(minutes=5), clock=clock)
    await svc.schedule("spin", 1)
    first = BookingReactions(svc, sinks={"notify": Inbox()}, tick=0.01)
    async with first.running():
        await svc.hold("spin", "ann")
        await first.settle()  # the expiry is scheduled ...
    clock.now = T0 + timedelta(hours=1)  # ... and comes due while nothing runs
    second = BookingReactions(
        BookingService(app_store, clock=clock), sinks={"notify": Inbox()}, tick=0.01
    )
    async with second.running():

        async def freed() -> bool:
            return await svc.roster("spin") == []

        await until(freed)
        await anyio.sleep(0.1)
    types = [e.type for e in await app_store.read("booking:spin")]
    assert types == ["scheduled", "hold", "expiry"]


async def test_hold_input_is_checked(app_store: EventStore) -> None:
    svc = BookingService(app_store)
    with pytest.raises(InvalidBookingError):
        await svc.hold("", "ann", 2)
    with pytest.raises(InvalidBookingError):
        await svc.confirm("yoga", "")
    with pytest.raises(InvalidBookingError):
        BookingService(app_store, hold_ttl=timedelta(0))
    assert await app_store.read("booking:yoga") == []
