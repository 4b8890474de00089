"""``python -m evsrc parked …``: list, show, replay or discard a projection's parked events.

A replay is a request recorded in the parked stream: the projection's active
runner (which has the handler code) picks it up within its ``parked_poll``
and records the outcome; ``parked list`` shows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsrc.errors import InvalidInputError
from evsrc.parking import ParkedEvents, parked_projections

if TYPE_CHECKING:
    import argparse

    from evsrc.admin.render import Output
    from evsrc.store import EventStore

__all__ = ["add_parser", "run"]

_COLUMNS = ["projection", "number", "stream", "seq", "type", "checkpoint", "status", "error"]


def add_parser(commands: Any) -> None:
    """Add the ``parked`` command and its actions to the admin command's subparsers."""
    p = commands.add_parser("parked", help="events a projection parked: list, show, replay")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("list", help="parked events still pending (of one projection or all)")
    a.add_argument("name", nargs="?", help="the projection (default: every projection)")
    a.add_argument("--all", action="store_true", help="also those replayed or discarded")
    a = actions.add_parser("show", help="one parked event, with the event itself")
    a.add_argument("name")
    a.add_argument("number", type=int)
    for action, what in (("replay", "ask the active runner to handle"), ("discard", "give up")):
        a = actions.add_parser(action, help=f"{what} parked events (NUMBERs or --all)")
        a.add_argument("name")
        a.add_argument("numbers", type=int, nargs="*", metavar="NUMBER")
        a.add_argument("--all", action="store_true", help="every pending parked event")


async def run(args: argparse.Namespace, store: EventStore, out: Output) -> int:
    """Run ``parked ACTION``; the exit code."""
    if args.action == "list":
        names = [args.name] if args.name else await parked_projections(store)
        rows: list[dict[str, Any]] = []
        for name in names:
            found = await ParkedEvents(store, name).all()
            rows.extend(p.as_dict() for p in found if args.all or p.pending)
        out.table(_COLUMNS, rows)
        return 0
    parked = ParkedEvents(store, args.name)
    if args.action == "show":
        p = await parked.get(args.number)
        facts = p.as_dict()
        try:
            e = await parked.original(p)
        except InvalidInputError as exc:
            facts["event"] = str(exc)
        else:
            facts["event"] = {"data": e.data, "metadata": e.metadata, "version": e.version}
        out.facts(f"parked event {p.number} of {p.projection}", facts)
        return 0
    if bool(args.numbers) == bool(args.all):
        msg = f"parked {args.action}: name the NUMBERs, or pass --all (not both)"
        raise InvalidInputError(msg, argument="numbers", value=args.numbers)
    numbers = None if args.all else list(args.numbers)
    if args.action == "replay":
        done = await parked.request_replay(numbers)
        out.facts("replay requested", {"projection": args.name, "numbers": done})
    else:
        done = await parked.discard(numbers)
        out.facts("discarded", {"projection": args.name, "numbers": done})
    return 0
