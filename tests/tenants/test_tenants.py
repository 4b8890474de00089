"""Tenants: a store per tenant on every backend, and nothing crosses from one to another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from evsrc import (
    ConfigurationError,
    InvalidInputError,
    NewEvent,
    ProjectionRunner,
    Projector,
    StoreClosedError,
)
from evsrc.tenants import TenantStores, check_tenant

if TYPE_CHECKING:
    from evsrc import RecordedEvent

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory:"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/{{tenant}}.db"
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


class Streams(Projector):
    """Every stream it sees (a raw projector: it reads everything)."""

    name = "streams"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def wants(self, recorded: RecordedEvent) -> bool:
        return True

    async def handle(self, recorded: RecordedEvent, *context: Any) -> None:
        self.seen.append(recorded.stream)


def checkpoints_of(store: Any) -> Any:
    """The store's own checkpoint table where it has one (projections stay inside it)."""
    try:
        from evsrc.postgres import PostgresEventStore
        from evsrc.postgres.projection import PostgresCheckpointStore
    except ImportError:  # pragma: no cover
        return None
    from evsrc.sqlite import SqliteCheckpointStore, SqliteEventStore

    if isinstance(store, PostgresEventStore):
        return PostgresCheckpointStore(store)
    if isinstance(store, SqliteEventStore):
        return SqliteCheckpointStore(store)
    return None


async def test_tenants_never_see_each_other(url: str) -> None:
    async with TenantStores(url) as tenants:
        acme = await tenants.store("acme")
        globex = await tenants.store("globex")
        assert acme is not globex
        assert await tenants.store("acme") is acme  # cached
        await acme.append("booking:yoga", [NewEvent("booking", {"actor": "ann"})])
        await globex.append("booking:yoga", [NewEvent("booking", {"actor": "bob"})])
        await globex.append("booking:pilates", [NewEvent("booking", {"actor": "cy"})])
        assert [e.data["actor"] for e in await acme.read("booking:yoga")] == ["ann"]
        assert [e.data["actor"] for e in await globex.read("booking:yoga")] == ["bob"]
        assert await acme.last_seq("booking:pilates") == 0
        assert [e.data["actor"] async for e in acme.read_all()] == ["ann"]

        # Subscriptions: acme's live feed gets only acme's events.
        live: list[str] = []

        async def follow() -> None:
            async for e in acme.subscribe():
                live.append(e.data["actor"])
                if len(live) == 2:
                    return

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                await anyio.sleep(0.1)
                await globex.append("booking:yoga", [NewEvent("booking", {"actor": "dee"})])
                await acme.append("booking:yoga", [NewEvent("booking", {"actor": "eve"})])
        assert live == ["ann", "eve"]

        # Projections of the same name, one per tenant, checkpoints kept apart.
        a = ProjectionRunner(acme, Streams(), checkpoints_of(acme))
        g = ProjectionRunner(globex, Streams(), checkpoints_of(globex))
        assert await a.catch_up() == 2
        assert await g.catch_up() == 3
        assert a.projector.seen == ["booking:yoga"] * 2  # type: ignore[attr-defined]
        if tenants.kind != "memory":
            # A runner reopened later resumes from its own tenant's checkpoint.
            again = ProjectionRunner(acme, Streams(), checkpoints_of(acme))
            assert await again.catch_up() == 0


async def test_bad_tenant_names_are_refused(url: str) -> None:
    async with TenantStores(url) as tenants:
        for bad in ["", "Acme", "../etc", "a-b", "a" * 41, "1st", "x;drop", 7, None]:
            with pytest.raises(InvalidInputError):
                await tenants.store(bad)  # type: ignore[arg-type]
        assert tenants.open_tenants() == []
    assert check_tenant("a" * 40) == "a" * 40


def test_bad_configurations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        TenantStores(f"sqlite:///{tmp_path}/one.db")  # no {tenant}: one file for all
    with pytest.raises(ConfigurationError):
        TenantStores("mysql://x")
    with pytest.raises(InvalidInputError):
        TenantStores("memory:", max_open=0)
    with pytest.raises(InvalidInputError):
        TenantStores("memory:", schema_prefix="Bad-Prefix")


async def test_open_stores_are_bounded_and_leases_are_kept(tmp_path: Path) -> None:
    async with TenantStores(f"sqlite:///{tmp_path}/{{tenant}}.db", max_open=2) as tenants:
        first = await tenants.store("t1")
        await first.append("s", [NewEvent("x")])
        async with tenants.lease("t2") as leased:
            await tenants.store("t3")
            await tenants.store("t4")
            assert "t2" in tenants.open_tenants()  # leased: kept open
            assert "t1" not in tenants.open_tenants()
            await leased.append("s", [NewEvent("x")])
        with pytest.raises(StoreClosedError):
            await first.read("s")  # evicted and closed
        reopened = await tenants.store("t1")  # its data is in its file
        assert len(await reopened.read("s")) == 1
        assert len(tenants.open_tenants()) == 2
        assert tenants.evicted >= 2
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["t1.db", "t2.db", "t3.db", "t4.db"]


def test_the_admin_command_takes_a_tenant(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/{{tenant}}.db"

    async def fill() -> None:
        async with TenantStores(url) as tenants:
            await (await tenants.store("acme")).append("a-only", [NewEvent("x")])
            await (await tenants.store("globex")).append("g-only", [NewEvent("x")])

    anyio.run(fill)
    env = {k: v for k, v in os.environ.items() if k != "EVSRC_STORE"}

    def evsrc(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "evsrc", "--store", url, "--json", *args]
        return subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    acme = evsrc("--tenant", "acme", "streams")
    assert acme.returncode == 0, acme
    assert [r["stream"] for r in json.loads(acme.stdout)] == ["a-only"]
    globex = evsrc("--tenant", "globex", "streams")
    assert [r["stream"] for r in json.loads(globex.stdout)] == ["g-only"]
    bad = evsrc("--tenant", "../acme", "streams")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    missing = evsrc("streams")  # a {tenant} URL needs --tenant
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
