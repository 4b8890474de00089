"""The framework runs under every anyio backend (here: trio), on the in-memory store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from evsrc import CommandHandler, Outcome, ProjectionRunner
from evsrc.memory import InMemoryEventStore
from evsrc.testing.stores import GateStore, YieldingStore

from .domain import Account, Opened
from .test_projection import Balances

if TYPE_CHECKING:
    from decimal import Decimal


async def scenario() -> tuple[list[object], Decimal, Decimal]:
    store = InMemoryEventStore()
    h = CommandHandler(YieldingStore(store), Account)
    await h.execute("a", lambda a: a.open("x"))
    await h.execute("a", lambda a: a.deposit(50))
    results: list[object] = []

    async def withdraw(n: int) -> None:
        results.append(await h.execute("a", lambda a: a.withdraw(n)))

    runner = ProjectionRunner(store, Balances())
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.run)
            async with anyio.create_task_group() as cmds:
                for i in range(100):
                    cmds.start_soon(withdraw, 1 + i % 3)
            last = await h.execute("a", lambda a: a.deposit(1))
            assert last.committed is not None
            await runner.wait_until(last.committed)
            tg.cancel_scope.cancel()
    projector = runner.projector
    assert isinstance(projector, Balances)
    return results, (await h.load("a")).balance, projector.balances["account:a"]


async def cancel_scenario() -> list[str]:
    store = InMemoryEventStore()
    gate = GateStore(store)
    h = CommandHandler(gate, Account)
    await store.append("account:a", [Account.registry.encode(Opened(owner="x"))])
    got: list[str] = []

    async def deposit(i: int, scope: anyio.CancelScope) -> None:
        with scope:
            out = await h.execute("a", lambda a: a.deposit(1, ref=f"q{i}"))
            got.append(f"q{i}" if out.ok else "?")

    scopes = [anyio.CancelScope() for _ in range(6)]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for i, scope in enumerate(scopes):
                tg.start_soon(deposit, i, scope)
                await anyio.sleep(0)
            while gate.waiting == 0:
                await anyio.sleep(0)
            scopes[0].cancel()  # the driver, at the gate
            scopes[3].cancel()  # a queued caller
            await anyio.sleep(0)
            gate.open.set()
    assert not h._lanes
    return sorted(got)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_batching_and_projection_under_each_backend(backend: str) -> None:
    results, balance, projected = anyio.run(scenario, backend=backend)
    assert len(results) == 100 and all(isinstance(r, Outcome) for r in results)
    assert balance >= 0 and projected == balance


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_cancellation_under_each_backend(backend: str) -> None:
    assert anyio.run(cancel_scenario, backend=backend) == ["q1", "q2", "q4", "q5"]
