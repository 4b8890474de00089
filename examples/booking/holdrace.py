"""The race demo with holds: bookers race to *hold* seats; unconfirmed holds expire.

``hold_race(store, bookers=N, seats=C)`` schedules a fresh occurrence and
starts every booker at once with ``hold``; those who find it full join the
waitlist. Every other holder confirms. Then the clock (injected) jumps past
the holds' time: the reactions expire the unconfirmed holds, promote the
waitlist into the freed seats and notify each person promoted through the
outbox. :class:`HoldRaceReport` counts it all and checks the rule.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio

from examples.booking.domain import BookingStatus, ConfirmStatus
from examples.booking.reactions import BookingReactions
from examples.booking.service import BookingService

if TYPE_CHECKING:
    from evsrc.reactions import OutboxDelivery
    from evsrc.store import EventStore

__all__ = ["HoldRaceReport", "hold_race"]


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class _Inbox:
    def __init__(self) -> None:
        self.got: list[OutboxDelivery] = []

    async def deliver(self, message: OutboxDelivery) -> None:
        self.got.append(message)


@dataclass
class HoldRaceReport:
    """What a hold race did, and the check of the rule."""

    occurrence: str
    bookers: int
    seats: int
    counts: Counter[str] = field(default_factory=Counter)
    roster: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def problems(self) -> list[str]:
        """Every way the outcome breaks the rule; empty when all is well."""
        c = self.counts
        out: list[str] = []
        if len(self.roster) > self.seats:
            out.append(f"roster has {len(self.roster)} actors for {self.seats} seats")
        if len(set(self.roster)) != len(self.roster):
            out.append("an actor appears twice on the roster")
        if c["promoted"] != min(c["expired"], c["waitlisted"]):
            out.append(f"{c['expired']} holds expired but {c['promoted']} were promoted")
        if (
            sorted(self.notified) != sorted(set(self.notified))
            or len(self.notified) != c["promoted"]
        ):
            out.append(f"{len(self.notified)} notices for {c['promoted']} promotions")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON object."""
        return {
            "occurrence": self.occurrence,
            "bookers": self.bookers,
            "seats": self.seats,
            "counts": dict(self.counts),
            "roster_size": len(self.roster),
            "notified": len(self.notified),
            "elapsed": self.elapsed,
            "problems": self.problems(),
        }

    def summary(self) -> str:
        """The human-readable summary."""
        c = self.counts
        problems = self.problems()
        check = "FAILED: " + "; ".join(problems) if problems else "OK"
        return "\n".join(
            [
                f"hold race: {self.bookers} bookers for {self.seats} seats "
                f"(booking:{self.occurrence})",
                f"  held               {c['held']:>8}",
                f"  confirmed          {c['confirmed']:>8}",
                f"  waitlisted         {c['waitlisted']:>8}",
                f"  holds expired      {c['expired']:>8}",
                f"  promoted           {c['promoted']:>8}",
                f"  notified (outbox)  {len(self.notified):>8}",
                f"  roster             {len(self.roster):>8} of {self.seats}",
                f"  elapsed            {self.elapsed:>8.3f} s",
                f"  check: {check}",
            ]
        )


async def hold_race(store: EventStore, *, bookers: int, seats: int) -> HoldRaceReport:
    """Race ``bookers`` to hold ``seats``; half the holders confirm, the rest expire."""
    clock = _Clock()
    svc = BookingService(store, hold_ttl=timedelta(minutes=15), clock=clock, max_attempts=1000)
    inbox = _Inbox()
    reactions = BookingReactions(svc, sinks={"notify": inbox}, tick=0.01, outbox_backoff=0.01)
    occurrence = f"holds-{uuid.uuid4().hex[:12]}"
    await svc.schedule(occurrence, seats)
    report = HoldRaceReport(occurrence, bookers, seats)
    c = report.counts
    started = time.perf_counter()
    async with reactions.running():
        holders: list[str] = []

        async def booker(i: int) -> None:
            actor = f"holder-{i:06d}"
            r = await svc.hold(occurrence, actor)
            if r.status is BookingStatus.HELD:
                c["held"] += 1
                holders.append(actor)
            else:
                w = await svc.book(occurrence, actor=actor, waitlist=True)
                c[w.status.value] += 1

        async with anyio.create_task_group() as tg:
            for i in range(bookers):
                tg.start_soon(booker, i)
        for actor in holders[::2]:
            if (await svc.confirm(occurrence, actor)).status is ConfirmStatus.CONFIRMED:
                c["confirmed"] += 1
        await reactions.settle()  # every hold's expiry is scheduled
        clock.now += timedelta(minutes=16)  # the unconfirmed holds run out
        expected = c["held"] - c["confirmed"]
        with anyio.fail_after(60):
            while True:
                types = [e.type for e in await store.read(f"booking:{occurrence}")]
                if types.count("expiry") >= expected:
                    break
                await anyio.sleep(0.02)
            c["expired"] = types.count("expiry")
            c["promoted"] = types.count("promotion")
            await reactions.notifier.wait_until_head()  # notices recorded ...
            await reactions.outbox.wait_until_head()  # ... and delivered
    report.elapsed = time.perf_counter() - started
    report.roster = await svc.roster(occurrence)
    report.notified = [str(m.payload["actor"]) for m in inbox.got]
    return report
