"""The peer: the ``eventsourcing`` library (PyPI 9.5.x) with its PostgreSQL persistence.

``eventsourcing`` is synchronous (psycopg 3 with a connection pool), so its
concurrent figures use one thread per writer, and it runs in a worker thread
of the benchmark's event loop.

Two levels are measured, each at its strongest:

- the *recorder* (``ApplicationRecorder.insert_events``): its counterpart of
  ``append_expect`` — optimistic concurrency through the
  ``(originator_id, originator_version)`` primary key, state already encoded
  as bytes; used for appends and reads;
- the *application* (``Application`` + ``Aggregate`` with ``@event``, aggregate
  cache with fast-forward on): used for the hot-seat booking, retrying on
  ``IntegrityError`` (its ``RecordConflictError``) as its docs advise.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

from benchmarks.db import dsn_parts
from benchmarks.harness import NotAvailable

__all__ = ["SKIP_BENCH", "EsBooking", "EsRecorder", "require_eventsourcing"]

SKIP_BENCH = "skipped: install .[bench]"


def require_eventsourcing() -> None:
    """NotAvailable unless ``eventsourcing[postgres]`` is importable."""
    try:
        import eventsourcing.postgres  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise NotAvailable(f"{SKIP_BENCH} ({exc})") from exc


def _env(dsn: str, dbname: str, pool_size: int, **more: str) -> dict[str, str]:
    p = dsn_parts(dsn)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": p["host"],
        "POSTGRES_PORT": p["port"],
        "POSTGRES_USER": p["user"],
        "POSTGRES_PASSWORD": p["password"],
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "0",
        "CREATE_TABLE": "true",
    }
    env.update(more)
    return env


class EsRecorder:
    """An ``eventsourcing`` application recorder on database ``dbname``."""

    def __init__(self, dsn: str, dbname: str, pool_size: int) -> None:
        require_eventsourcing()
        from eventsourcing.persistence import InfrastructureFactory
        from eventsourcing.utils import Environment

        env = Environment("BENCH", _env(dsn, dbname, pool_size))
        self.factory = InfrastructureFactory.construct(env)
        self.recorder: Any = self.factory.application_recorder()

    def close(self) -> None:
        """Close its pool."""
        self.factory.close()

    @staticmethod
    def stored(originator: UUID, version: int, actor: str) -> Any:
        """A stored event shaped like evsrc's booking event (JSON state)."""
        from eventsourcing.persistence import StoredEvent

        state = json.dumps({"actor": actor}).encode()
        return StoredEvent(originator, version, "booking", state)

    def timed_append(self, streams: int, per_stream: int, batch: int = 1) -> tuple[int, float]:
        """``streams`` writer threads, each making ``per_stream`` inserts of ``batch`` events.

        Every insert carries the versions its writer expects next (the
        optimistic check). Returns (inserts, seconds of the writing only).
        """
        ids = [uuid4() for _ in range(streams)]
        payloads = [
            [
                [self.stored(oid, i * batch + j + 1, f"a{j}") for j in range(batch)]
                for i in range(per_stream)
            ]
            for oid in ids
        ]
        insert = self.recorder.insert_events
        start_gate = threading.Barrier(streams + 1) if streams > 1 else None

        def warm() -> None:
            # One untimed insert per writer thread first, so every pooled
            # connection is open (and its statements prepared) before the clock.
            insert([self.stored(uuid4(), 1, "warm-up")])

        def writer(items: list[list[Any]]) -> None:
            warm()
            if start_gate is not None:
                start_gate.wait()
            for events in items:
                insert(events)

        if streams == 1:
            warm()
            t0 = time.perf_counter()
            for events in payloads[0]:
                insert(events)
            return per_stream, time.perf_counter() - t0
        with ThreadPoolExecutor(streams) as pool:
            futures = [pool.submit(writer, p) for p in payloads]
            assert start_gate is not None
            start_gate.wait()
            t0 = time.perf_counter()
            for f in futures:
                f.result()
            elapsed = time.perf_counter() - t0
        return streams * per_stream, elapsed

    def load_stream(self, events: int, chunk: int = 1000) -> UUID:
        """A new stream of ``events`` events (setup, not timed)."""
        oid = uuid4()
        for start in range(0, events, chunk):
            n = min(chunk, events - start)
            self.recorder.insert_events(
                [self.stored(oid, start + j + 1, f"a{start + j}") for j in range(n)]
            )
        return oid

    def read_stream(self, oid: UUID) -> int:
        """Read every event of stream ``oid`` (decoding JSON state, as evsrc does)."""
        rows = self.recorder.select_events(oid)
        loads = json.loads
        for r in rows:
            loads(r.state)
        return len(rows)

    def read_all(self, page: int = 1000) -> int:
        """Read every notification in order, in pages, decoding JSON state."""
        start = None
        n = 0
        loads = json.loads
        while True:
            batch = self.recorder.select_notifications(
                start=start, limit=page, inclusive_of_start=False
            )
            if not batch:
                return n
            for r in batch:
                loads(r.state)
            n += len(batch)
            start = batch[-1].id


class EsBooking:
    """The booking rule on ``eventsourcing``: an aggregate with a roster, retried on conflict."""

    def __init__(self, dsn: str, dbname: str, pool_size: int) -> None:
        require_eventsourcing()
        from benchmarks.es_domain import Bookings

        p = _env(dsn, dbname, pool_size, AGGREGATE_CACHE_MAXSIZE="1000")
        self.app = Bookings(env=p)

    def close(self) -> None:
        """Close its pool."""
        self.app.close()

    def race(self, bookers: int, seats: int, threads: int) -> dict[str, Any]:
        """``bookers`` racing for ``seats`` on a new occurrence, run on ``threads`` threads.

        Each booker books fresh actors one after another until it is told
        ``full`` (the same protocol as the evsrc side). Latency is per booking call.
        """
        occ = self.app.open(seats)
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        attempts: list[int] = []
        appends = 0
        gate = threading.Barrier(threads + 1)
        lock = threading.Lock()
        queue = list(range(bookers))

        def booker(b: int) -> None:
            nonlocal appends
            k = 0
            while True:
                t0 = time.perf_counter()
                status, tries, issued = self.app.book(occ, f"b{b}-{k}")
                dt = time.perf_counter() - t0
                k += 1
                with lock:
                    latencies.append(dt)
                    statuses[status] = statuses.get(status, 0) + 1
                    appends += issued
                    if status == "booked":
                        attempts.append(tries)
                if status == "full":
                    return

        def worker() -> None:
            gate.wait()
            while True:
                with lock:
                    if not queue:
                        return
                    b = queue.pop()
                booker(b)

        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(worker) for _ in range(threads)]
            gate.wait()
            t0 = time.perf_counter()
            for f in futures:
                f.result()
            elapsed = time.perf_counter() - t0
        return {
            "seconds": elapsed,
            "statuses": statuses,
            "attempts": attempts,
            "appends": appends,
            "latencies": latencies,
            "roster": self.app.roster(occ),
        }
