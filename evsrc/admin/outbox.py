"""The outbox's part of ``python -m evsrc``: dead letters, in ``status`` and ``outbox``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsrc.reactions.outbox import DEAD_LETTERS, dead_letters

if TYPE_CHECKING:
    import argparse

    from evsrc.store import EventStore

__all__ = ["add_parser", "dead_count", "dead_rows"]


def add_parser(commands: Any) -> None:
    """Add the ``outbox`` subcommand (``commands`` is the subparsers object)."""
    p = commands.add_parser("outbox", help="outbox messages that went to the dead letters")
    p.add_argument("--limit", type=int, default=100, help="the last LIMIT dead letters")


async def dead_count(store: EventStore) -> int:
    """How many outbox messages are dead letters."""
    return await store.last_seq(DEAD_LETTERS)


async def dead_rows(args: argparse.Namespace, store: EventStore) -> list[dict[str, Any]]:
    """The last ``--limit`` dead letters as table rows, oldest first."""
    limit = max(1, min(int(args.limit), 10_000))
    rows: list[dict[str, Any]] = []
    for e in await dead_letters(store, limit=limit):
        d = e.data
        rows.append(
            {
                "dead_at": e.recorded_at.isoformat(),
                "dispatcher": d.get("dispatcher"),
                "sink": d.get("sink"),
                "topic": d.get("topic"),
                "dedupe_key": d.get("dedupe_key"),
                "source": f"{d.get('stream')}@{d.get('seq')}",
                "attempts": d.get("attempts"),
                "error": d.get("error"),
            }
        )
    return rows
