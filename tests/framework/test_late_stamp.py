"""A command's ids are those of its caller's context, however late its metadata is built."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from evsrc import CommandHandler
from evsrc.correlation import CAUSATION_ID, CORRELATION_ID, correlated
from evsrc.records import NewEvent
from evsrc.testing.stores import GateStore, RacingStore

from .domain import Account

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc.records import Committed, Conflict
    from evsrc.store import EventStore


async def test_a_batched_command_keeps_its_callers_correlation(any_store: EventStore) -> None:
    gate = GateStore(any_store)
    gate.open.set()
    h = CommandHandler(gate, Account)
    assert (await h.execute("a", lambda a: a.open("owner"))).ok
    gate.open = asyncio.Event()  # type: ignore[assignment]
    gate.appends.clear()
    first = asyncio.create_task(h.execute("a", lambda a: a.deposit(1, "first")))
    async with asyncio.timeout(5):
        await gate.arrived.wait()

    async def in_conversation(ref: str) -> None:
        with correlated(f"conv-{ref}"):
            assert (await h.execute("a", lambda a: a.deposit(1, ref))).ok

    async def alone(ref: str) -> None:
        assert (await h.execute("a", lambda a: a.deposit(1, ref))).ok

    # Queued behind the first: decided and appended by its task, in one batch.
    queued = [
        asyncio.create_task(in_conversation("x")),
        asyncio.create_task(alone("y")),
        asyncio.create_task(in_conversation("z")),
    ]
    await asyncio.sleep(0)
    gate.open.set()
    await first
    await asyncio.gather(*queued)
    md = {e.data["ref"]: e.metadata for e in await any_store.read("account:a") if e.data.get("ref")}
    assert md["x"][CORRELATION_ID] == "conv-x" and md["z"][CORRELATION_ID] == "conv-z"
    assert md["y"][CORRELATION_ID] == md["y"][CAUSATION_ID]  # it starts its own conversation
    causes = {m[CAUSATION_ID] for m in md.values()}
    assert len(causes) == 4  # each command its own id
    assert max(n for _, _, n in gate.appends) == 3  # the three went out together


class Capturing(RacingStore):
    """Records the metadata of every event sent to ``append_expect``."""

    sent: list[dict[str, object]]

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        self.sent.extend(dict(e.metadata or {}) for e in events)
        return await super().append_expect(stream, expected, events)


async def test_a_retried_command_keeps_its_ids(any_store: EventStore) -> None:
    store = Capturing(any_store, 0, lambda: NewEvent("account.deposited", {"amount": "1"}))
    store.sent = []
    h = CommandHandler(store, Account, backoff=0)
    assert (await h.execute("a", lambda a: a.open("owner"))).ok
    store.sent.clear()
    store.races = 2  # its first two appends conflict
    with correlated("conv"):
        out = await h.execute("a", lambda a: a.deposit(1, "mine"))
    assert out.ok and out.attempts == 3
    assert len(store.sent) == 3
    assert {m[CORRELATION_ID] for m in store.sent} == {"conv"}
    assert len({m[CAUSATION_ID] for m in store.sent}) == 1  # one command, one id, every attempt
