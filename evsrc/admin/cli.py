"""Argument parsing and the commands of ``python -m evsrc``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from evsrc.admin import inspect, lifecycle, outbox, parked, render
from evsrc.errors import ConfigurationError, EvsrcError, InvalidInputError
from evsrc.records import Checkpoint
from evsrc.urls import open_store, redact_url

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc.records import RecordedEvent
    from evsrc.store import EventStore

__all__ = ["main"]

#: Exit codes.
OK, FAILED, USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="evsrc",
        description="Look after an evsrc event store: setup, status, streams, read, tail.",
    )
    parser.add_argument(
        "--store",
        default=os.environ.get("EVSRC_STORE"),
        help="store URL: memory:, postgresql://user@host/db (default: $EVSRC_STORE)",
    )
    parser.add_argument("--json", action="store_true", help="JSON output, for scripts")
    parser.add_argument(
        "--tenant",
        default=os.environ.get("EVSRC_TENANT"),
        help="the tenant's store: its schema or {tenant} file (default: $EVSRC_TENANT)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("setup", help="create or migrate the schema (repairs a restore)")
    commands.add_parser("status", help="schema, counts, head, projections and their lag")
    p = commands.add_parser("streams", help="streams and their lengths")
    p.add_argument("--prefix", default="", help="only streams starting with this")
    p = commands.add_parser("read", help="the events of one stream")
    p.add_argument("stream")
    p.add_argument("--after", type=int, default=0, help="only events with seq > AFTER")
    p.add_argument("--limit", type=int, default=None, help="at most LIMIT events")
    p = commands.add_parser("tail", help="follow the global log (Ctrl-C or SIGTERM stops)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--after", help="start after this checkpoint (commit:position)")
    start.add_argument("--from-start", action="store_true", help="start at the first event")
    p = commands.add_parser("projections", help="projection checkpoints")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = actions.add_parser("reset", help="forget a projection's checkpoint: it replays")
    r.add_argument("name")
    outbox.add_parser(commands)
    parked.add_parser(commands)
    lifecycle.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the admin command with ``argv`` (default: ``sys.argv[1:]``); return its exit code."""
    args = _parser().parse_args(argv)
    _log_to_stderr()
    if not args.store:
        return _fail(USAGE, "no store: pass --store URL or set EVSRC_STORE")
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except (ConfigurationError, InvalidInputError) as exc:
        return _fail(USAGE, _line(exc, args.store))
    except EvsrcError as exc:
        return _fail(FAILED, _line(exc, args.store))


def _log_to_stderr() -> None:
    """Show the library's warnings (a restore repaired by setup, a stalled reader) on stderr."""
    logger = logging.getLogger("evsrc")
    if not any(getattr(h, "_evsrc_admin", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("evsrc: %(levelname)s: %(message)s"))
        handler._evsrc_admin = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def _line(exc: BaseException, url: str) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {_scrub(text, url)}"


def _scrub(text: str, url: str) -> str:
    redacted = redact_url(url)
    return text if redacted == url else text.replace(url, redacted)


def _fail(code: int, message: str) -> int:
    print(f"evsrc: error: {message}", file=sys.stderr)
    return code


async def _run(args: argparse.Namespace) -> int:
    out = render.Output(json_mode=args.json)
    with out.working(f"opening {redact_url(args.store)}"):
        store = await _guarded(_open(args))
    try:
        code: int = await _guarded(_dispatch(args, store, out))
        return code
    finally:
        await store.close()


async def _open(args: argparse.Namespace) -> EventStore:
    """The store of ``--store``, or of ``--tenant`` on it (see :mod:`evsrc.tenants`)."""
    if args.tenant is None:
        if "{tenant}" in args.store:
            msg = "the store URL names a file per tenant: pass --tenant NAME"
            raise ConfigurationError(msg)
        return await open_store(args.store)
    from evsrc.tenants import TenantStores

    tenants = TenantStores(args.store)
    return await tenants.store(args.tenant)


async def _guarded(awaitable: Any) -> Any:
    """Await, turning a driver error the store did not map into its evsrc error."""
    try:
        return await awaitable
    except EvsrcError:
        raise
    except Exception as exc:
        try:
            from evsrc.postgres.store import translate_error
        except ImportError:  # pragma: no cover
            raise exc from None
        raise translate_error(exc) from exc


async def _dispatch(args: argparse.Namespace, store: EventStore, out: render.Output) -> int:
    command = args.command
    if command == "setup":
        # open_store() has just run setup(): say where the schema stands.
        facts = await inspect.status(store)
        out.facts("setup done", {"schema_version": facts.get("schema_version")})
    elif command == "status":
        facts = await inspect.status(store)
        facts["outbox_dead_letters"] = await outbox.dead_count(store)
        out.status(facts)
    elif command == "outbox":
        columns = ["dead_at", "dispatcher", "sink", "topic", "dedupe_key", "source", "attempts"]
        out.table([*columns, "error"], await outbox.dead_rows(args, store))
    elif command == "streams":
        out.table(["stream", "events"], await inspect.streams(store, args.prefix))
    elif command == "read":
        events = await store.read(args.stream, after=args.after, limit=args.limit)
        out.table(
            ["seq", "type", "version", "recorded_at", "data", "metadata"],
            [_event_row(e) for e in events],
        )
    elif command == "tail":
        await _tail(args, store, out)
    elif command == "parked":
        return await parked.run(args, store, out)
    elif command in lifecycle.COMMANDS:
        return await lifecycle.run(args, store, out)
    elif command == "projections":
        if not await inspect.reset_projection(store, args.name):
            return _fail(FAILED, f"no saved checkpoint for projection {args.name!r}")
        out.facts("reset", {"projection": args.name, "checkpoint": None})
    return OK


def _event_row(e: RecordedEvent, *, stream: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {"stream": e.stream} if stream else {}
    row.update(
        seq=e.seq,
        checkpoint=str(e.checkpoint),
        id=str(e.id),
        type=e.type,
        version=e.version,
        recorded_at=e.recorded_at.isoformat(),
        data=e.data,
        metadata=e.metadata,
    )
    return row


async def _tail(args: argparse.Namespace, store: EventStore, out: render.Output) -> None:
    after: Checkpoint | None
    if args.after is not None:
        after = Checkpoint.parse(args.after)
    elif args.from_start:
        after = None
    else:  # from the head: only what commits from now on
        head = (await inspect.status(store))["head"]
        after = None if head is None else Checkpoint.parse(head)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    stopping = False

    def stop() -> None:
        nonlocal stopping
        stopping = True
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    # One line on stderr once following (stdout stays the events alone): a person sees it
    # has started, a script can wait for it before appending or signalling.
    start = "the start" if after is None else f"checkpoint {after}"
    print(f"evsrc tail: following after {start}; Ctrl-C or SIGTERM stops", file=sys.stderr)
    sys.stderr.flush()
    try:
        async for event in store.subscribe(after=after):
            out.line(_event_row(event, stream=True))
    except asyncio.CancelledError:
        if not stopping:
            raise
        task.uncancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
