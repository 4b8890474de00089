"""The measuring harness: interleaved repetitions, medians, availability, progress.

A scenario is a list of *cases* ("postgres, 16 streams"); a case runs the same
work through several *variants*: ``evsrc`` (the library), ``limit`` (the
physical limit: raw asyncpg running the evsrc SQL, or the minimal dict-of-lists
store in memory) and ``peer`` (the ``eventsourcing`` library). Every repetition
runs every variant once, in an order that rotates from one repetition to the
next, so that drift on a noisy machine hits all of them alike; each figure is
the median of its repetitions.

A variant that cannot run here (PostgreSQL unreachable, a library piece not yet
written, the ``bench`` extra not installed) raises :class:`NotAvailable` and is
reported as such; the rest of the case still runs.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks import db

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "Case",
    "CheckFailed",
    "Context",
    "NotAvailable",
    "Sample",
    "ScenarioResult",
    "median",
]


class NotAvailable(Exception):  # noqa: N818 - a state, not an error
    """This variant cannot run here; the message says why (shown in the report)."""


class CheckFailed(AssertionError):  # noqa: N818 - reads as a verdict
    """A correctness check inside a scenario failed: the figures are void."""


@dataclass
class Sample:
    """One repetition of one variant: ``ops`` done in ``seconds``, plus extra metrics."""

    ops: float
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Operations per second."""
        return self.ops / self.seconds if self.seconds > 0 else float("inf")


Runner = Callable[[], Awaitable[Sample]]


def median(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


@dataclass
class Case:
    """One line of a scenario's table: the same work run through each variant."""

    name: str
    unit: str
    params: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # variant -> what it is
    rates: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # variant -> "ok" | reason
    derived: dict[str, float | None] = field(default_factory=dict)  # more ratios, by name

    def rate(self, variant: str) -> float | None:
        """Median rate of ``variant``, None if it did not run."""
        return median(self.rates.get(variant, []))

    def metric(self, variant: str, name: str) -> float | None:
        """Median of an extra metric of ``variant``."""
        return median(self.extra.get(variant, {}).get(name, []))

    def ratio(self, variant: str, against: str) -> float | None:
        """``variant``'s median rate over ``against``'s."""
        a, b = self.rate(variant), self.rate(against)
        if a is None or b is None or b == 0:
            return None
        return a / b

    def variants(self) -> list[str]:
        """Variant keys in report order: the labelled ones first, as labelled."""
        keys = list(self.labels)
        keys += [v for v in self.status if v not in keys]
        return keys

    def to_json(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        ratios: dict[str, float | None] = {}
        for v in self.variants():
            if v in ("limit", "peer"):
                continue
            for against in ("limit", "peer"):
                if against in self.labels or against in self.status:
                    ratios[f"{v}/{against}"] = self.ratio(v, against)
        ratios.update(self.derived)
        return {
            "name": self.name,
            "unit": self.unit,
            "params": self.params,
            "variants": {
                v: {
                    "label": self.labels.get(v, v),
                    "status": self.status.get(v, "not run"),
                    "median": self.rate(v),
                    "samples": self.rates.get(v, []),
                    "extra": {
                        k: {"median": median(s), "samples": s}
                        for k, s in self.extra.get(v, {}).items()
                    },
                }
                for v in self.variants()
            },
            "ratios": ratios,
        }


@dataclass
class ScenarioResult:
    """Everything one scenario measured and checked."""

    name: str
    title: str
    cases: list[Case] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = "ok"
    seconds: float = 0.0

    def case(self, name: str) -> Case | None:
        """The case called ``name``."""
        return next((c for c in self.cases if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "cases": [c.to_json() for c in self.cases],
            "checks": self.checks,
            "notes": self.notes,
        }


class Progress:
    """One status line on stderr, rewritten in place on a terminal; finished steps stay."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self._width = 0

    def show(self, text: str) -> None:
        """Replace the status line with ``text``."""
        if self.quiet or not self.tty:  # in a log, only the permanent lines
            return
        line = f"[{time.monotonic() - self.start:6.1f}s] {text}"
        pad = max(0, self._width - len(line))
        sys.stderr.write("\r" + line + " " * pad)
        sys.stderr.flush()
        self._width = len(line)

    def done(self, text: str) -> None:
        """Print a permanent line."""
        if self.quiet:
            return
        if self.tty:
            sys.stderr.write("\r" + " " * self._width + "\r")
            self._width = 0
        sys.stderr.write(f"[{time.monotonic() - self.start:6.1f}s] {text}\n")
        sys.stderr.flush()


def rep_order(variants: list[str], rep: int) -> list[str]:
    """The order of the variants in repetition ``rep``.

    Rotating one fixed order would give every variant the same predecessor in
    every repetition — on PostgreSQL the variant that runs right after the
    peer's heavy, table-locking writes would always meet the server still
    flushing them. Odd repetitions rotate the reversed order instead, so each
    variant starts first, last and after different neighbours.
    """
    if not variants:
        return []
    base = variants if rep % 2 == 0 else variants[::-1]
    shift = (rep // 2) % len(base)
    return base[shift:] + base[:shift]


@dataclass
class Context:
    """What a scenario gets: sizes, the DSN, the repetition count, progress and checks."""

    quick: bool
    reps: int
    dsn: str | None
    db_prefix: str
    progress: Progress
    result: ScenarioResult
    pg_reason: str | None = None  # why PostgreSQL is not available, if it is not

    def size(self, full: int, quick: int) -> int:
        """``quick`` in the smoke run, ``full`` otherwise."""
        return quick if self.quick else full

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        """Record a correctness check; a failed one is fatal for the scenario's figures."""
        self.result.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        if not ok:
            raise CheckFailed(f"{name}: {detail}")

    def note(self, text: str) -> None:
        """Add a note to the report."""
        if text not in self.result.notes:
            self.result.notes.append(text)

    def require_pg(self) -> str:
        """The DSN, or NotAvailable when PostgreSQL is not reachable."""
        if self.dsn is None or self.pg_reason is not None:
            raise NotAvailable(self.pg_reason or "PostgreSQL: no DSN")
        return self.dsn

    async def run_case(
        self,
        case: Case,
        runners: dict[str, Callable[[], Awaitable[Runner]]],
        *,
        reps: int | None = None,
        warmup: bool | None = None,
    ) -> Case:
        """Prepare every variant, then run them interleaved ``reps`` times.

        ``runners`` maps a variant to a coroutine function that prepares it
        (creating databases, loading data) and returns the runner of one
        repetition. A variant whose preparation raises ``NotAvailable`` is
        reported as such.
        """
        self.result.cases.append(case)
        ready: dict[str, Runner] = {}
        for variant, prepare in runners.items():
            self.progress.show(f"{self.result.name}: {case.name}: preparing {variant}")
            try:
                ready[variant] = await prepare()
            except NotAvailable as exc:
                case.status[variant] = f"not available: {exc}"
            else:
                case.status[variant] = "ok"
        n = self.reps if reps is None else reps
        order = list(ready)
        settle = (
            await db.admin_connect(self.dsn)
            if case.params.get("backend") == "postgres" and self.dsn and self.pg_reason is None
            else None
        )
        try:
            await self._run_reps(case, ready, order, n, settle, warmup)
        finally:
            if settle is not None:
                await settle.close()
        summary = ", ".join(
            f"{v}={_fmt(case.rate(v))}" if case.status.get(v) == "ok" else f"{v}=n/a"
            for v in runners
        )
        self.progress.done(f"{self.result.name}: {case.name}: {summary} {case.unit}")
        return case

    async def _run_reps(
        self,
        case: Case,
        ready: dict[str, Runner],
        order: list[str],
        n: int,
        settle: asyncpg.Connection | None,
        warmup: bool | None,
    ) -> None:
        """``run_case``'s repetitions (``settle``: the admin connection that checkpoints)."""
        # The harness's own data (events held for loading, prepared payloads) is
        # moved out of the cyclic collector's reach, so that a collection during a
        # timed run costs what it would cost the code under test, not what the
        # benchmark holds; each run starts after a full collection.
        gc.collect()
        gc.freeze()
        # In-memory cases are short enough that the first run in a process pays
        # for imports and caches warming up: give every variant one untimed run.
        if warmup if warmup is not None else case.params.get("backend") != "postgres":
            for variant in list(order):
                self.progress.show(f"{self.result.name}: {case.name}: {variant} warm-up")
                try:
                    await ready[variant]()
                except NotAvailable as exc:
                    case.status[variant] = f"not available: {exc}"
                    ready.pop(variant)
                    order.remove(variant)
        for rep in range(n):
            for variant in rep_order(order, rep):
                self.progress.show(f"{self.result.name}: {case.name}: {variant} rep {rep + 1}/{n}")
                if settle is not None:
                    await db.settle(settle)
                gc.collect()
                try:
                    sample = await ready[variant]()
                except NotAvailable as exc:
                    case.status[variant] = f"not available: {exc}"
                    ready.pop(variant)
                    order.remove(variant)
                    continue
                case.rates.setdefault(variant, []).append(sample.rate)
                for k, v in sample.extra.items():
                    case.extra.setdefault(variant, {}).setdefault(k, []).append(v)
        gc.unfreeze()


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def machine_info() -> dict[str, Any]:
    """Cores, RAM, Python: what the figures were measured on."""
    import platform

    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
