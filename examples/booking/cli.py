"""``python -m examples.booking``: the booking app's command line.

``race`` runs many concurrent bookers for few seats and checks the rule;
``schedule`` / ``book`` / ``cancel`` / ``roster`` are the everyday commands;
``serve`` runs the HTTP API. In-memory store by default, PostgreSQL with
``--dsn`` (or ``EVSRC_DSN``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from evsrc.errors import EvsrcError, InvalidInputError
from evsrc.memory import InMemoryEventStore
from examples.booking.domain import (
    AlreadyScheduledError,
    BookingResult,
    BookingStatus,
    CancelStatus,
    NotScheduledError,
)
from examples.booking.progress import Progress
from examples.booking.service import BookingService

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from evsrc.events import Committed, Conflict, NewEvent, RecordedEvent
    from evsrc.store import EventStore

__all__ = ["LaggyMemoryStore", "RaceReport", "main", "open_store", "race"]

MEMORY_NOTE = (
    "Without --dsn every command runs on a fresh in-memory store that vanishes when it "
    "exits, so separate `schedule` / `book` / `roster` invocations see nothing of each "
    "other; use --dsn (or EVSRC_DSN) for a PostgreSQL store that persists, or `serve` to "
    "keep an in-memory store alive behind the HTTP API."
)


class LaggyMemoryStore(InMemoryEventStore):
    """The in-memory store with a simulated round trip on every read and append.

    The plain in-memory store answers without ever yielding to the event
    loop, so concurrent bookers on it simply run one after another and never
    race. This one waits a random 0…``latency`` seconds before each read and
    append, as a network would, so that bookers observe the same state,
    race, conflict and batch — the race demo is then a real race.
    """

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency
        self._rng = random.Random()

    async def _round_trip(self) -> None:
        await anyio.sleep(self._rng.uniform(0, self.latency))

    async def read(
        self,
        stream: str,
        *,
        after: int = 0,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """``InMemoryEventStore.read`` after a simulated round trip."""
        await self._round_trip()
        return await super().read(stream, after=after, limit=limit, backwards=backwards)

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """``InMemoryEventStore.append_expect`` after a simulated round trip."""
        await self._round_trip()
        return await super().append_expect(stream, expected, events)


@contextlib.asynccontextmanager
async def open_store(dsn: str | None, *, latency: float = 0.0) -> AsyncIterator[EventStore]:
    """An in-memory store, or a PostgreSQL one (schema set up) when ``dsn`` is given.

    ``latency`` (seconds, in-memory only) simulates a network round trip.
    """
    if dsn is None:
        memory = LaggyMemoryStore(latency) if latency > 0 else InMemoryEventStore()
        async with memory:
            yield memory
        return
    from evsrc.postgres import PostgresEventStore

    pg = await PostgresEventStore.connect(dsn)
    async with pg:
        await pg.setup()
        yield pg


# -- race ---------------------------------------------------------------------


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


# -- commands -----------------------------------------------------------------


def _print_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=None) + "\n")


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    latency = getattr(args, "latency", 0.0) / 1000 if args.dsn is None else 0.0
    async with open_store(args.dsn, latency=latency) as store:
        svc = BookingService(store)
        backend = "memory" if args.dsn is None else "postgres"
        if args.command == "race":
            progress = None if args.json else Progress(args.bookers, sys.stderr)
            clients = [BookingService(store, max_attempts=1000) for _ in range(args.clients)]
            report = await race(
                clients,
                bookers=args.bookers,
                seats=args.seats,
                occurrence=args.occurrence,
                actor_prefix=args.actor_prefix,
                backend=backend,
                progress=progress,
            )
            if args.json:
                _print_json(out, report.to_dict())
            else:
                out.write(report.summary() + "\n")
            return 1 if report.problems() else 0
        if args.command == "schedule":
            s = await svc.schedule(args.occurrence, args.capacity)
            if args.json:
                _print_json(out, s.to_dict())
            else:
                verb = "scheduled" if s.created else "already scheduled"
                out.write(f"{args.occurrence}: {verb} with capacity {s.capacity}\n")
            return 0
        if args.command == "book":
            r = await svc.book(args.occurrence, args.capacity, args.actor, waitlist=args.waitlist)
            if args.json:
                _print_json(out, r.to_dict())
            elif r.status in (BookingStatus.BOOKED, BookingStatus.ALREADY):
                out.write(f"{r.actor}: {r.status} seat {r.seat} on {args.occurrence}\n")
            elif r.status is BookingStatus.WAITLISTED:
                out.write(f"{r.actor}: waitlisted at position {r.position} on {args.occurrence}\n")
            else:
                out.write(
                    f"{r.actor}: full — {args.occurrence} has {r.capacity} seats, all taken\n"
                )
            return 3 if r.status is BookingStatus.FULL else 0
        if args.command == "cancel":
            c = await svc.cancel(args.occurrence, args.actor)
            if args.json:
                _print_json(out, c.to_dict())
            elif c.status is CancelStatus.ABSENT:
                out.write(f"{c.actor}: not booked on {args.occurrence}; nothing to cancel\n")
            else:
                line = f"{c.actor}: {c.status.value.replace('_', ' ')} on {args.occurrence}"
                if c.promoted is not None:
                    line += f"; {c.promoted} promoted from the waitlist to seat {c.promoted_seat}"
                out.write(line + "\n")
            return 4 if c.status is CancelStatus.ABSENT else 0
        if args.command == "roster":
            occ = await svc.state(args.occurrence)
            cap = occ.effective_capacity(args.capacity)
            capacity = cap if isinstance(cap, int) else None
            if capacity is None and args.capacity is not None:
                await svc.seats_left(args.occurrence, args.capacity)  # raises the mismatch
            left = None if capacity is None else max(0, capacity - len(occ.roster))
            if args.json:
                _print_json(
                    out,
                    {
                        "occurrence": args.occurrence,
                        "capacity": capacity,
                        "roster": occ.roster,
                        "seats_left": left,
                        "waitlist": occ.waitlist,
                    },
                )
                return 0
            head = f"{args.occurrence}: {len(occ.roster)} booked"
            if capacity is not None:
                head += f" of {capacity}, {left} seats left"
            out.write(head + "\n")
            for seat, actor in enumerate(occ.roster, 1):
                out.write(f"  {seat:>4}  {actor}\n")
            for pos, actor in enumerate(occ.waitlist, 1):
                out.write(f"  w{pos:>3}  {actor}\n")
            return 0
    msg = f"unknown command {args.command!r}"  # pragma: no cover - argparse refuses it
    raise AssertionError(msg)  # pragma: no cover


# -- argument parsing -----------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        msg = f"not an integer: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 1:
        msg = f"must be at least 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``argparse`` parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.booking",
        description="Capacity-safe booking on evsrc: a race demo, everyday commands, an HTTP API.",
        epilog=MEMORY_NOTE,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dsn",
        default=os.environ.get("EVSRC_DSN") or None,
        help="PostgreSQL DSN (default: $EVSRC_DSN; unset: a fresh in-memory store)",
    )
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "race",
        parents=[common],
        help="N concurrent bookers race for C seats; prints a summary and checks the rule",
        description="Schedule an occurrence with C seats, start N bookers at once, show "
        "progress, then summarise and check that the roster never exceeds capacity. "
        "Exits 1 if the check fails.",
    )
    p.add_argument("--bookers", type=_positive, default=1000, help="concurrent bookers (1000)")
    p.add_argument("--seats", type=_positive, default=100, help="capacity (100)")
    p.add_argument("--occurrence", help="occurrence to race on (default: a fresh name)")
    p.add_argument("--actor-prefix", default="booker-", help="actor names' prefix (booker-)")
    p.add_argument(
        "--clients",
        type=_positive,
        default=4,
        help="services sharing the store, each with its own handler and cache, "
        "like app servers (4)",
    )
    p.add_argument(
        "--latency",
        type=float,
        default=1.0,
        metavar="MS",
        help="in-memory only: simulated round trip, a random 0…MS milliseconds per read "
        "and append, so that bookers really interleave (1.0; 0 = none)",
    )

    epilog = MEMORY_NOTE
    p = sub.add_parser(
        "schedule", parents=[common], help="record an occurrence's capacity", epilog=epilog
    )
    p.add_argument("occurrence")
    p.add_argument("capacity", type=int)

    p = sub.add_parser(
        "book",
        parents=[common],
        help="book a seat (exit 3 when full)",
        epilog=epilog,
        description="Book a seat for ACTOR. Exit status: 0 booked/already/waitlisted, "
        "3 full, 2 invalid input, 1 other errors.",
    )
    p.add_argument("occurrence")
    p.add_argument("actor")
    p.add_argument(
        "--capacity", type=int, help="capacity, for an unscheduled occurrence (else optional)"
    )
    p.add_argument("--waitlist", action="store_true", help="join the waitlist when full")

    p = sub.add_parser(
        "cancel",
        parents=[common],
        help="cancel a booking or waitlist place (exit 4 when absent)",
        epilog=epilog,
    )
    p.add_argument("occurrence")
    p.add_argument("actor")

    p = sub.add_parser(
        "roster", parents=[common], help="list the roster, seats left and waitlist", epilog=epilog
    )
    p.add_argument("occurrence")
    p.add_argument("--capacity", type=int, help="capacity, for an unscheduled occurrence")

    p = sub.add_parser(
        "serve",
        help="run the HTTP JSON API",
        description="Serve the booking HTTP API with uvicorn. Without --dsn the in-memory "
        "store lives as long as the server.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--dsn", default=os.environ.get("EVSRC_DSN") or None, help="PostgreSQL DSN")
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    out = out if out is not None else sys.stdout
    if args.command == "serve":
        import uvicorn

        from examples.booking.api import create_app

        uvicorn.run(create_app(dsn=args.dsn), host=args.host, port=args.port)
        return 0
    try:
        return anyio.run(_run, args, out)
    except InvalidInputError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 2
    except (NotScheduledError, AlreadyScheduledError, EvsrcError) as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    except KeyboardInterrupt:
        return 130
