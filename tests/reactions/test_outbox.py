"""The outbox on every backend: sent with its decision, delivered at least once, dead letters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from evsrc import (
    Aggregate,
    CommandHandler,
    Event,
    InvalidInputError,
    OutboxDispatcher,
    OutboxMessage,
    ProjectionRunner,
    StreamCheckpointStore,
    applies,
)
from evsrc.reactions import DEAD_LETTERS, FileSink, OutboxDelivery, WebhookSink, dead_letters
from evsrc.sqlite import SqliteEventStore

if TYPE_CHECKING:
    from evsrc.store import EventStore


class Promoted(Event, type="test.promoted"):
    actor: str


class Waitlist(Aggregate):
    """Promotes someone and tells them, in one append."""

    stream_prefix = "waitlist"

    @applies(Promoted)
    def _promoted(self, e: Promoted) -> None:
        pass

    @applies(OutboxMessage)
    def _outbox(self, e: OutboxMessage) -> None:
        pass  # messages change no state

    def promote(self, actor: str, sink: str = "mail") -> list[Event]:
        return [
            Promoted(actor=actor),
            OutboxMessage(sink=sink, topic="waitlist.promoted", payload={"actor": actor}),
        ]


class Flaky:
    """Fails the first ``failures`` deliveries of each message, then records it."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.tries: dict[str, int] = {}
        self.got: list[OutboxDelivery] = []

    async def deliver(self, message: OutboxDelivery) -> None:
        n = self.tries[message.dedupe_key] = self.tries.get(message.dedupe_key, 0) + 1
        if n <= self.failures:
            raise OSError(f"down ({n})")
        self.got.append(message)


def runner(store: EventStore, dispatcher: OutboxDispatcher) -> ProjectionRunner:
    return ProjectionRunner(store, dispatcher, StreamCheckpointStore(store))


async def test_message_commits_with_the_decision_and_is_delivered(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Waitlist)
    out = await h.execute("yoga", lambda w: w.promote("ann"), correlation_id="req-9")
    assert out.committed is not None and out.committed.last_seq == 2  # one append, both events
    sink = Flaky(failures=2)
    d = OutboxDispatcher(any_store, {"mail": sink}, backoff=0.001)
    assert await runner(any_store, d).catch_up() == 1
    (got,) = sink.got
    msg = (await any_store.read("waitlist:yoga"))[1]
    assert (got.dedupe_key, got.topic, got.payload, got.attempt) == (
        str(msg.id),
        "waitlist.promoted",
        {"actor": "ann"},
        3,
    )
    assert got.metadata["correlation_id"] == "req-9"
    # A restart from the start (a lost checkpoint) redelivers with the same dedupe key.
    again = Flaky()
    await ProjectionRunner(any_store, OutboxDispatcher(any_store, {"mail": again})).catch_up()
    assert [m.dedupe_key for m in again.got] == [got.dedupe_key]


async def test_dead_letter_after_n_failures_then_moves_on(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Waitlist)
    await h.execute("yoga", lambda w: w.promote("ann"))
    await h.execute("yoga", lambda w: w.promote("bob", sink="nowhere"))
    await h.execute("pilates", lambda w: w.promote("cy"))
    sink = Flaky(failures=10**6)
    d = OutboxDispatcher(any_store, {"mail": sink}, max_attempts=3, backoff=0.001)
    assert await runner(any_store, d).catch_up() == 3
    assert sorted(sink.tries.values()) == [3, 3]  # capped
    dead = await dead_letters(any_store)
    assert [(e.data["payload"]["actor"], e.data["attempts"]) for e in dead] == [
        ("ann", 3),
        ("bob", 0),
        ("cy", 3),
    ]
    assert "OSError: down (3)" in dead[0].data["error"]
    assert "no sink named 'nowhere'" in dead[1].data["error"]
    # Re-running the same messages (a crash before the checkpoint) buries nobody twice.
    again = OutboxDispatcher(any_store, {"mail": sink}, max_attempts=1)
    await ProjectionRunner(any_store, again).catch_up()
    assert await any_store.last_seq(DEAD_LETTERS) == 3


async def test_file_sink_writes_json_lines(any_store: EventStore, tmp_path: Path) -> None:
    h = CommandHandler(any_store, Waitlist)
    await h.execute("yoga", lambda w: w.promote("ann"))
    path = tmp_path / "outbox.jsonl"
    d = OutboxDispatcher(any_store, {"mail": FileSink(path)})
    await runner(any_store, d).catch_up()
    (line,) = path.read_text().splitlines()
    assert json.loads(line)["payload"] == {"actor": "ann"}


async def test_webhook_sink_posts_with_idempotency_key(any_store: EventStore) -> None:
    seen: list[httpx.Request] = []
    fail = [True]

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if fail[0]:
            fail[0] = False
            return httpx.Response(503)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        h = CommandHandler(any_store, Waitlist)
        await h.execute("yoga", lambda w: w.promote("ann"))
        sink = WebhookSink("http://127.0.0.1:9/hook", client=client)
        d = OutboxDispatcher(any_store, {"mail": sink}, backoff=0.001)
        await runner(any_store, d).catch_up()
    assert len(seen) == 2 and d.delivered == 1 and d.dead == 0
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(keys) == 1
    assert json.loads(seen[1].content)["topic"] == "waitlist.promoted"


def test_bad_configuration_is_refused(tmp_path: Path) -> None:
    from evsrc.memory import InMemoryEventStore

    store = InMemoryEventStore()
    with pytest.raises(InvalidInputError):
        OutboxDispatcher(store, {"mail": object()})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError):
        OutboxDispatcher(store, {}, max_attempts=0)
    with pytest.raises(InvalidInputError):
        WebhookSink("ftp://x")


async def test_dead_letters_show_in_the_admin_cli(tmp_path: Path) -> None:

    path = tmp_path / "dead.db"
    async with await SqliteEventStore.connect(path) as store:
        await store.setup()
        await CommandHandler(store, Waitlist).execute("yoga", lambda w: w.promote("ann", "gone"))
        await runner(store, OutboxDispatcher(store, {})).catch_up()
    url = f"sqlite:///{path}"
    root = Path(__file__).resolve().parents[2]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "evsrc", "--store", url, "--json", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    assert json.loads(run("status").stdout)["outbox_dead_letters"] == 1
    (row,) = json.loads(run("outbox").stdout)
    assert (row["sink"], row["topic"], row["attempts"]) == ("gone", "waitlist.promoted", 0)
    assert row["source"] == "waitlist:yoga@2"
