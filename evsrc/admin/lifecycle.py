"""``python -m evsrc delete|truncate|retention|sweep``: remove events, with a confirmation.

``delete`` and ``truncate`` remove events for good; without ``--yes`` they say
what they would remove, change nothing and exit with 1 (docs/lifecycle.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from evsrc.errors import InvalidInputError

if TYPE_CHECKING:
    import argparse

    from evsrc.admin.render import Output
    from evsrc.store import EventStore

__all__ = ["COMMANDS", "add_parser", "run"]

COMMANDS = frozenset({"delete", "truncate", "retention", "sweep"})


def add_parser(commands: Any) -> None:
    """Add the lifecycle commands to the admin command's subparsers."""
    p = commands.add_parser("delete", help="delete a stream (soft; --hard: tombstone it)")
    p.add_argument("stream")
    p.add_argument("--hard", action="store_true", help="tombstone: never written again")
    p.add_argument("--yes", action="store_true", help="really delete (else: say what would go)")
    p = commands.add_parser("truncate", help="remove a stream's events below a seq")
    p.add_argument("stream")
    p.add_argument("--before", type=int, required=True, metavar="SEQ", help="keep seq >= SEQ")
    p.add_argument("--yes", action="store_true", help="really remove (else: say what would go)")
    p = commands.add_parser("retention", help="show or set a stream's max_count / max_age")
    p.add_argument("stream")
    p.add_argument("--max-count", type=int, help="keep the newest N events")
    p.add_argument("--max-age", type=float, metavar="SECONDS", help="keep younger events")
    p.add_argument("--clear", action="store_true", help="no retention for the stream")
    commands.add_parser("sweep", help="remove every event retention hides")


async def run(args: argparse.Namespace, store: EventStore, out: Output) -> int:
    """Run a lifecycle command; the exit code."""
    command = args.command
    if command == "sweep":
        out.facts("swept", {"removed": await store.sweep()})
    elif command == "retention":
        await _retention(args, store, out)
    elif not args.yes:
        await _preview(args, store, out)
        return 1
    elif command == "delete":
        d = await store.delete_stream(args.stream, hard=args.hard)
        checkpoint = None if d.checkpoint is None else str(d.checkpoint)
        out.facts(
            "deleted", {"stream": d.stream, "last_seq": d.last_seq, "hard": d.hard,
                        "checkpoint": checkpoint}
        )  # fmt: skip
    else:
        removed = await store.truncate_before(args.stream, args.before)
        out.facts("truncated", {"stream": args.stream, "removed": removed})
    return 0


async def _preview(args: argparse.Namespace, store: EventStore, out: Output) -> None:
    events = await store.read(args.stream)
    if args.command == "delete":
        going = len(events)
        what = "hard-delete (tombstone)" if args.hard else "delete"
    else:
        if type(args.before) is not int or args.before < 1:
            msg = f"--before must be a seq >= 1, got {args.before!r}"
            raise InvalidInputError(msg, argument="before", value=args.before)
        head = events[-1].seq if events else 0
        going = sum(1 for e in events if e.seq < min(args.before, head))
        what = f"truncate before seq {args.before}"
    out.facts(
        f"would {what}: pass --yes to do it",
        {"stream": args.stream, "events_removed": going, "changed": False},
    )


async def _retention(args: argparse.Namespace, store: EventStore, out: Output) -> None:
    if args.clear or args.max_count is not None or args.max_age is not None:
        if args.clear and (args.max_count is not None or args.max_age is not None):
            msg = "retention: --clear, or --max-count / --max-age (not both)"
            raise InvalidInputError(msg, argument="clear", value=True)
        age = None
        if args.max_age is not None:
            try:
                age = timedelta(seconds=args.max_age)
            except OverflowError as exc:
                msg = f"--max-age is out of range: {args.max_age!r}"
                raise InvalidInputError(msg, argument="max_age", value=args.max_age) from exc
        meta = await store.set_stream_metadata(args.stream, max_count=args.max_count, max_age=age)
    else:
        meta = await store.stream_metadata(args.stream)
    out.facts(
        f"retention of {args.stream}",
        {
            "max_count": meta.max_count,
            "max_age_seconds": None if meta.max_age is None else meta.max_age.total_seconds(),
        },
    )
