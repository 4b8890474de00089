"""The race demo: many concurrent bookers for few seats, then a check of the rule.

``race(services, bookers=N, seats=C)`` schedules a fresh occurrence, starts
every booker at once and returns a :class:`RaceReport` whose ``problems()``
lists every way the outcome broke the rule (empty when all is well).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from examples.booking.domain import BookingResult, BookingStatus
from examples.booking.service import BookingService

if TYPE_CHECKING:
    from collections.abc import Sequence

    from examples.booking.progress import Progress

__all__ = ["RaceReport", "race"]


@dataclass
class RaceReport:
    """What a race did: the results, the final roster, and the check of the rule."""

    occurrence: str
    backend: str
    bookers: int
    seats: int
    clients: int
    results: list[BookingResult]
    roster: list[str]
    elapsed: float
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def conflicts_retried(self) -> int:
        """Attempts beyond the first, summed over all bookers."""
        return sum(r.attempts - 1 for r in self.results)

    @property
    def appends(self) -> int:
        """Appends that carried bookings (concurrent bookings share one when batched)."""
        return len({r.checkpoint for r in self.results if r.checkpoint is not None})

    def problems(self) -> list[str]:
        """Every way the outcome breaks the rule; empty when all is well."""
        out: list[str] = []
        roster = self.roster
        if len(roster) > self.seats:
            out.append(f"roster has {len(roster)} actors for {self.seats} seats")
        if len(set(roster)) != len(roster):
            out.append("an actor appears twice on the roster")
        booked = [r for r in self.results if r.status is BookingStatus.BOOKED]
        if any(r.actor not in roster for r in booked):
            out.append("a booked actor is missing from the roster")
        seats = [r.seat for r in booked]
        if len(set(seats)) != len(seats):
            out.append("two bookers were given the same seat")
        if self.counts["full"] and len(roster) < self.seats:
            out.append("someone was told 'full' while seats are free")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The summary (and every booker's result) as a JSON object."""
        return {
            "occurrence": self.occurrence,
            "backend": self.backend,
            "bookers": self.bookers,
            "seats": self.seats,
            "clients": self.clients,
            "counts": dict(self.counts),
            "conflicts_retried": self.conflicts_retried,
            "appends": self.appends,
            "elapsed": self.elapsed,
            "roster_size": len(self.roster),
            "problems": self.problems(),
            "results": [r.to_dict() for r in self.results],
        }

    def summary(self) -> str:
        """The human-readable summary."""
        c = self.counts
        rate = len(self.results) / self.elapsed if self.elapsed > 0 else 0.0
        problems = self.problems()
        if problems:
            check = "FAILED: " + "; ".join(problems)
        else:
            full = "equals capacity" if len(self.roster) == self.seats else "is within capacity"
            check = (
                f"OK — roster {full} ({len(self.roster)}/{self.seats}), nobody twice, "
                "every booked seat distinct"
            )
        lines = [
            f"race on {self.backend}: {self.bookers} bookers for {self.seats} seats, "
            f"{self.clients} client{'s' if self.clients != 1 else ''} "
            f"(booking:{self.occurrence})",
            f"  booked             {c['booked']:>8}",
            f"  full               {c['full']:>8}",
        ]
        if c["already"]:
            lines.append(f"  already            {c['already']:>8}")
        lines += [
            f"  conflicts retried  {self.conflicts_retried:>8}",
            f"  appends            {self.appends:>8}   (bookings per append: "
            f"{c['booked'] / max(self.appends, 1):.1f})",
            f"  elapsed            {self.elapsed:>8.3f} s ({rate:,.0f} bookings/s)",
            f"  check: {check}",
        ]
        return "\n".join(lines)


async def race(
    service: BookingService | Sequence[BookingService],
    *,
    bookers: int,
    seats: int,
    occurrence: str | None = None,
    actor_prefix: str = "booker-",
    backend: str = "memory",
    progress: Progress | None = None,
) -> RaceReport:
    """Schedule ``occurrence`` with ``seats`` and let ``bookers`` tasks race for them at once.

    Given several services (clients: each its own handler, cache and batches,
    like separate app servers on one store), bookers are dealt out to them in turn.
    """
    services = [service] if isinstance(service, BookingService) else list(service)
    occurrence = occurrence or f"race-{uuid.uuid4().hex[:12]}"
    await services[0].schedule(occurrence, seats)
    results: list[BookingResult] = []
    counts: Counter[str] = Counter()

    async def booker(i: int) -> None:
        svc = services[i % len(services)]
        r = await svc.book(occurrence, actor=f"{actor_prefix}{i:06d}")
        results.append(r)
        counts[r.status.value] += 1
        if progress is not None:
            progress.update(len(results), f"booked {counts['booked']}  full {counts['full']}")

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(bookers):
            tg.start_soon(booker, i)
    elapsed = time.perf_counter() - started
    if progress is not None:
        progress.finish(len(results), f"booked {counts['booked']}  full {counts['full']}")
    roster = await services[0].roster(occurrence)
    return RaceReport(
        occurrence, backend, bookers, seats, len(services), results, roster, elapsed, counts
    )
