"""``python -m examples.booking``: the booking app's command line.

``race`` runs many concurrent bookers for few seats and checks the rule;
``schedule`` / ``book`` / ``cancel`` / ``roster`` are the everyday commands;
``hold`` / ``confirm`` hold a seat until confirmed, and ``react`` expires the
holds that ran out and notifies whoever the waitlist promotes; ``forget``
frees a person's places and forgets their name (crypto-shredding);
``serve`` runs the HTTP API and its page; ``token`` mints a bearer token.
Every command takes ``--store URL`` (see ``examples.booking.stores``); the
default is a SQLite file in the user's data directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from evsrc.errors import ConfigurationError, EvsrcError, InvalidInputError
from evsrc.reactions import FileSink, LogSink
from evsrc.shredding import ShreddingStore
from evsrc.urls import redact_url
from examples.booking.domain import BookingStatus, CancelStatus, ConfirmStatus
from examples.booking.holdrace import hold_race
from examples.booking.privacy import forget_actor
from examples.booking.progress import Progress
from examples.booking.race import race
from examples.booking.reactions import BookingReactions
from examples.booking.service import BookingService
from examples.booking.stores import (
    backend_name,
    default_store_url,
    open_booking_store,
    resolve_store_url,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from evsrc.store import EventStore

__all__ = ["build_parser", "main"]

STORE_NOTE = (
    "Stores: --store memory: (nothing kept), sqlite:///path.db (a file), or "
    "postgresql://user@host:port/db. Without --store: $EVSRC_STORE, else --dsn / $EVSRC_DSN, "
    "else the SQLite file {default} ($XDG_DATA_HOME or ~/.local/share), so separate "
    "invocations keep their bookings."
)

#: Exit status for "full" (book) and "nothing to cancel" (cancel).
EXIT_FULL, EXIT_ABSENT = 3, 4


def _print_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=None) + "\n")


# -- commands on a store: one function each, looked up in COMMANDS --------------------


async def _race(store: EventStore, args: argparse.Namespace, out: TextIO) -> int:
    if args.holds:
        held = await hold_race(store, bookers=args.bookers, seats=args.seats)
        if args.json:
            _print_json(out, held.to_dict())
        else:
            out.write(held.summary() + "\n")
        return 1 if held.problems() else 0
    progress = None if args.json else Progress(args.bookers, sys.stderr)
    clients = [BookingService(store, max_attempts=1000) for _ in range(args.clients)]
    report = await race(
        clients,
        bookers=args.bookers,
        seats=args.seats,
        occurrence=args.occurrence,
        actor_prefix=args.actor_prefix,
        backend=backend_name(args.store),
        progress=progress,
    )
    if args.json:
        _print_json(out, report.to_dict())
    else:
        out.write(report.summary() + "\n")
    return 1 if report.problems() else 0


async def _schedule(store: EventStore, args: argparse.Namespace, out: TextIO) -> int:
    s = await BookingService(store).schedule(args.occurrence, args.capacity)
    if args.json:
        _print_json(out, s.to_dict())
    else:
        verb = "scheduled" if s.created else "already scheduled"
        out.write(f"{args.occurrence}: {verb} with capacity {s.capacity}\n")
    return 0


async def _book(store: EventStore, args: argparse.Namespace, out: TextIO) -> int:
    svc = BookingService(store)
    r = await svc.book(args.occurrence, args.capacity, args.actor, waitlist=args.waitlist)
    if args.json:
        _print_json(out, r.to_dict())
    elif r.status in (BookingStatus.BOOKED, BookingStatus.ALREADY):
        out.write(f"{r.actor}: {r.status} seat {r.seat} on {args.occurrence}\n")
    elif r.status is BookingStatus.WAITLISTED:
        out.write(f"{r.actor}: waitlisted at position {r.position} on {args.occurrence}\n")
    else:
        out.write(f"{r.actor}: full — {args.occurrence} has {r.capacity} seats, all taken\n")
    return EXIT_FULL if r.status is BookingStatus.FULL else 0


async def _cancel(store: EventStore, args: argparse.Namespace, out: TextIO) -> int:
    c = await BookingService(store).cancel(args.occurrence, args.actor)
    if args.json:
        _print_json(out, c.to_dict())
    elif c.status is CancelStatus.ABSENT:
        out.write(f"{c.actor}: not booked on {args.occurrence}; nothing to cancel\n")
    else:
        line = f"{c.actor}: {c.status.value.replace('_', ' ')} on {args.occurrence}"
        if c.promoted is not None:
            line += f"; {c.promoted} promoted from the waitlist to seat {c.promoted_seat}"
        out.write(line + "\n")
    return EXIT_ABSENT if c.status is CancelStatus.ABSENT else 0


async def _forget(store: EventStore, args: argparse.Namespace, out: TextIO) -> int:
    if not isinstance(store, ShreddingStore):  # pragma: no cover - open_booking_store wraps
        msg = "this store does not encrypt actors; nothing can be forgotten"
        raise ConfigurationError(msg)
    f = await forget_actor(BookingService(store), store, args.actor)
    if args.json:
        _print_json(out, f.to_dict())
    else:
        for r in f.released:
            line = f"{f.actor}: {r.status.value.replace('_', ' ')} on {r.occurrence}"
            if r.promoted is not None:
                line += f"; {r.promoted} promoted from the waitlist"
            out.write(line + "\n")
        if f.forgotten:
            out.write(f"{f.actor}: forgotten (their name now reads as [forgotten:…])\n")
        else:
            out.write(f"{f.actor}: nothing to forget (unknown, or forgotten already)\n")
    return 0 if f.forgotten else EXIT_ABSENT


async def _hold(store: EventStore, args: argparse.Namespace, out: TextIO) -> int:
    svc = BookingService(store, hold_ttl=timedelta(minutes=args.minutes))
    r = await svc.hold(args.occurrence, args.actor, args.capacity)
    if args.json:
        _print_json(out, r.to_dict())
    elif r.status is BookingStatus.HELD:
        assert r.expires_at is not None
        until = r.expires_at.isoformat(timespec="seconds")
        out.write(f"{r.actor}: held seat {r.seat} on {args.occurrence} until {until}\n")
    elif r.status is BookingStatus.ALREADY:
        out.write(f"{r.actor}: already has seat {r.seat} on {args.occurrence}\n")
    else:
        out.write(f"{r.actor}: full — {args.occurrence} has {r.capacity} seats, all taken\n")
    return EXIT_FULL if r.status is BookingStatus.FULL else 0


async def _confirm(store: EventStore, args: argparse.Namespace, out: TextIO) -> int:
    c = await BookingService(store).confirm(args.occurrence, args.actor)
    if args.json:
        _print_json(out, c.to_dict())
    elif c.status is ConfirmStatus.ABSENT:
        out.write(f"{c.actor}: no hold on {args.occurrence} to confirm\n")
    else:
        out.write(f"{c.actor}: {c.status.value} seat {c.seat} on {args.occurrence}\n")
    return EXIT_ABSENT if c.status is ConfirmStatus.ABSENT else 0


async def _react(store: EventStore, args: argparse.Namespace, out: TextIO) -> int:
    sink = FileSink(args.notify_file) if args.notify_file else LogSink()
    reactions = BookingReactions(BookingService(store), sinks={"notify": sink}, tick=0.2)
    if not args.once:
        async with reactions.running():
            await anyio.sleep_forever()
    # Once: schedule expiries, fire what is due, notify whoever that promoted.
    await reactions.expiry.catch_up()
    await reactions.deadlines.runner.catch_up()
    fired = await reactions.deadlines.fire_due()
    await reactions.notifier.catch_up()
    await reactions.outbox.catch_up()
    delivered = reactions.dispatcher.delivered
    if args.json:
        _print_json(out, {"expired": fired, "notified": delivered})
    else:
        out.write(f"{fired} holds expired, {delivered} notices delivered\n")
    return 0


async def _roster(store: EventStore, args: argparse.Namespace, out: TextIO) -> int:
    svc = BookingService(store)
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
        held = occ.holds.get(actor)
        note = "" if held is None else f"  (held until {held.isoformat(timespec='seconds')})"
        out.write(f"  {seat:>4}  {actor}{note}\n")
    for pos, actor in enumerate(occ.waitlist, 1):
        out.write(f"  w{pos:>3}  {actor}\n")
    return 0


#: The commands that run against a store, by name.
COMMANDS: dict[str, Callable[[EventStore, argparse.Namespace, TextIO], Awaitable[int]]] = {
    "race": _race,
    "schedule": _schedule,
    "book": _book,
    "cancel": _cancel,
    "forget": _forget,
    "hold": _hold,
    "confirm": _confirm,
    "react": _react,
    "roster": _roster,
}


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    latency = getattr(args, "latency", 0.0) / 1000
    async with open_booking_store(args.store, latency=latency) as store:
        return await COMMANDS[args.command](store, args, out)


# -- commands without a store -----------------------------------------------------------


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from examples.booking.server import serve

    return serve(
        args.store,
        host=args.host,
        port=args.port,
        insecure_no_auth=args.insecure_no_auth,
        log_level=args.log_level,
    )


def _token(args: argparse.Namespace, out: TextIO) -> int:
    from examples.booking.auth import mint_token, secret_from_env

    out.write(
        mint_token(secret_from_env() or "", args.actor, admin=args.admin, ttl=args.ttl) + "\n"
    )
    return 0


#: The commands that open no store of their own, by name.
OTHER_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "serve": _serve,
    "token": _token,
}


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


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"not a number: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 0 < value <= 60 * 24 * 365:
        msg = f"must be more than 0 and at most a year of minutes, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _store_options(default_help: str) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        metavar="URL",
        help=f"the event store: memory:, sqlite:///path.db or postgresql://… ({default_help})",
    )
    common.add_argument(
        "--dsn", metavar="URL", help="alias of --store (default: $EVSRC_DSN), kept for old scripts"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``argparse`` parser for every subcommand."""
    default = default_store_url()
    note = STORE_NOTE.format(default=default)
    parser = argparse.ArgumentParser(
        prog="python -m examples.booking",
        description="Capacity-safe booking on evsrc: a race demo, everyday commands, "
        "an HTTP API with a web page.",
        epilog=note,
    )
    common = _store_options(f"default: $EVSRC_STORE, else {default}")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    race_store = _store_options("default: $EVSRC_STORE, else memory:")
    race_store.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "race",
        parents=[race_store],
        help="N concurrent bookers race for C seats; prints a summary and checks the rule",
        description="Schedule an occurrence with C seats, start N bookers at once, show "
        "progress, then summarise and check that the roster never exceeds capacity. "
        "Exits 1 if the check fails. Runs on a fresh in-memory store unless --store "
        "or $EVSRC_STORE names another.",
    )
    p.add_argument("--bookers", type=_positive, default=1000, help="concurrent bookers (1000)")
    p.add_argument("--seats", type=_positive, default=100, help="capacity (100)")
    p.add_argument("--occurrence", help="occurrence to race on (default: a fresh name)")
    p.add_argument("--actor-prefix", default="booker-", help="actor names' prefix (booker-)")
    p.add_argument(
        "--holds",
        action="store_true",
        help="bookers hold seats instead (the full ones join the waitlist); half confirm, "
        "the rest expire and the waitlist is promoted and notified",
    )
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
        help="memory: only: simulated round trip, a random 0…MS milliseconds per read "
        "and append, so that bookers really interleave (1.0; 0 = none)",
    )

    p = sub.add_parser(
        "schedule", parents=[common], help="record an occurrence's capacity", epilog=note
    )
    p.add_argument("occurrence")
    p.add_argument("capacity", type=int)

    p = sub.add_parser(
        "book",
        parents=[common],
        help="book a seat (exit 3 when full)",
        epilog=note,
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
        epilog=note,
    )
    p.add_argument("occurrence")
    p.add_argument("actor")

    p = sub.add_parser(
        "forget",
        parents=[common],
        help="forget a person: free their seats, holds and waitlist places, then delete their "
        "key (exit 4 when nothing was known)",
        epilog=note,
    )
    p.add_argument("actor")

    p = sub.add_parser(
        "hold",
        parents=[common],
        help="hold a seat until confirmed; it expires (exit 3 when full)",
        epilog=note,
        description="Hold a seat for ACTOR for --minutes. Unless confirmed, it expires: "
        "'react' frees it and promotes the waitlist.",
    )
    p.add_argument("occurrence")
    p.add_argument("actor")
    p.add_argument("--minutes", type=_minutes, default=15.0, help="how long it holds (15)")
    p.add_argument(
        "--capacity", type=int, help="capacity, for an unscheduled occurrence (else optional)"
    )

    p = sub.add_parser(
        "confirm", parents=[common], help="confirm a hold (exit 4 when none)", epilog=note
    )
    p.add_argument("occurrence")
    p.add_argument("actor")

    p = sub.add_parser(
        "react",
        parents=[common],
        help="expire holds and notify promoted people (until Ctrl-C, or --once)",
        epilog=note,
    )
    p.add_argument("--once", action="store_true", help="do what is due now, then exit")
    p.add_argument("--notify-file", help="append notices to this file (JSON lines), not the log")

    p = sub.add_parser(
        "roster", parents=[common], help="list the roster, seats left and waitlist", epilog=note
    )
    p.add_argument("occurrence")
    p.add_argument("--capacity", type=int, help="capacity, for an unscheduled occurrence")

    p = sub.add_parser(
        "serve",
        parents=[_store_options(f"default: $EVSRC_STORE, else {default}")],
        help="run the HTTP API and the web page",
        epilog=note,
        description="Serve the booking HTTP API and its page with uvicorn. Requests carry "
        "bearer tokens signed with $EVSRC_BOOKING_SECRET (mint them with the token "
        "command); the server refuses to start without a secret unless --insecure-no-auth.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve without authentication: every caller is an admin. For local trials only.",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level of the JSON request log on stderr (info)",
    )

    p = sub.add_parser(
        "token",
        help="mint a bearer token for ACTOR (secret: $EVSRC_BOOKING_SECRET)",
        description="Print a signed bearer token (HS256 JWT) naming ACTOR, for the HTTP API "
        "and the page. The secret comes from $EVSRC_BOOKING_SECRET (at least 32 bytes).",
    )
    p.add_argument("actor")
    p.add_argument(
        "--admin", action="store_true", help="an admin token: schedules, acts for others"
    )
    p.add_argument(
        "--ttl", type=_positive, default=30 * 24 * 3600, help="lifetime in seconds (30 days)"
    )
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    out = out if out is not None else sys.stdout
    if hasattr(args, "store"):
        default = "memory:" if args.command == "race" else None
        args.store = resolve_store_url(args.store, args.dsn, default=default)
    try:
        other = OTHER_COMMANDS.get(args.command)
        if other is not None:
            return other(args, out)
        return anyio.run(_run, args, out)
    except InvalidInputError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 2
    except ConfigurationError as exc:
        where = f" ({redact_url(args.store)})" if args.command in COMMANDS else ""
        sys.stderr.write(f"error: {exc.message}{where}\n")
        return 2
    except EvsrcError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    except KeyboardInterrupt:
        return 130
