"""``python -m evsrc delete|truncate|retention|sweep`` on a SQLite file, as operators run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from evsrc import STREAM_DELETED, NewEvent, StreamDeletedError
from evsrc.sqlite import SqliteEventStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ROOT = Path(__file__).resolve().parents[2]


def evsrc(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVSRC_STORE"}
    return subprocess.run(
        [sys.executable, "-m", "evsrc", "--store", url, "--json", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def facts(result: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


@pytest.fixture
async def filled(tmp_path: Path) -> AsyncIterator[tuple[SqliteEventStore, str]]:
    path = tmp_path / "admin.db"
    async with await SqliteEventStore.connect(path) as store:
        await store.setup()
        await store.append("s", [NewEvent("t", {"i": i}) for i in range(10)])
        yield store, f"sqlite:///{path}"


async def test_delete_asks_for_confirmation_then_deletes(
    filled: tuple[SqliteEventStore, str],
) -> None:
    store, url = filled
    preview = facts(evsrc(url, "delete", "s"), 1)
    assert preview["events_removed"] == 10 and preview["changed"] is False
    assert len(await store.read("s")) == 10
    done = facts(evsrc(url, "delete", "s", "--yes"))
    assert (done["last_seq"], done["hard"]) == (10, False)
    assert [e.type for e in await store.read("s")] == [STREAM_DELETED]
    done = facts(evsrc(url, "delete", "s", "--hard", "--yes"))
    assert done["hard"] is True
    with pytest.raises(StreamDeletedError):
        await store.read("s")
    result = evsrc(url, "delete", "s", "--yes")
    assert result.returncode == 1 and "StreamDeletedError" in result.stderr


async def test_truncate_asks_for_confirmation_then_truncates(
    filled: tuple[SqliteEventStore, str],
) -> None:
    store, url = filled
    assert facts(evsrc(url, "truncate", "s", "--before", "4"), 1)["events_removed"] == 3
    assert len(await store.read("s")) == 10
    assert facts(evsrc(url, "truncate", "s", "--before", "4", "--yes"))["removed"] == 3
    assert [e.seq for e in await store.read("s")] == list(range(4, 11))
    result = evsrc(url, "truncate", "s", "--before", "0", "--yes")
    assert result.returncode == 2 and "seq" in result.stderr
    assert [e.seq for e in await store.read("s")] == list(range(4, 11))


async def test_retention_and_sweep(filled: tuple[SqliteEventStore, str]) -> None:
    store, url = filled
    assert facts(evsrc(url, "retention", "s")) == {"max_count": None, "max_age_seconds": None}
    set_ = facts(evsrc(url, "retention", "s", "--max-count", "2", "--max-age", "3600"))
    assert set_ == {"max_count": 2, "max_age_seconds": 3600.0}
    assert [e.seq for e in await store.read("s")] == [9, 10]
    assert facts(evsrc(url, "sweep"))["removed"] == 8
    result = evsrc(url, "retention", "s", "--max-count", "0")
    assert result.returncode == 2 and "max_count" in result.stderr
    assert facts(evsrc(url, "retention", "s", "--clear")) == {
        "max_count": None, "max_age_seconds": None
    }  # fmt: skip
