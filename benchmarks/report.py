"""Reports of a run: the goals' standing, JSON, a markdown table and a PNG chart.

Everything here works on the run's JSON data, so a report can be rebuilt from a
results file: ``python -m benchmarks.report benchmarks/results/latest.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.peer import SKIP_BENCH

__all__ = ["chart", "goals", "markdown", "write_all"]

Data = dict[str, Any]


def _scenario(data: Data, name: str) -> Data | None:
    return next((s for s in data["scenarios"] if s["name"] == name), None)


def _cases(data: Data, scenario: str, backend: str | None = None) -> list[Data]:
    s = _scenario(data, scenario)
    if s is None:
        return []
    return [c for c in s["cases"] if backend is None or c["params"].get("backend") == backend]


def _ratio(case: Data, key: str) -> float | None:
    r: float | None = case.get("ratios", {}).get(key)
    return r


def _median(case: Data, variant: str) -> float | None:
    v = case["variants"].get(variant)
    return None if v is None else v["median"]


def _extra(case: Data, variant: str, metric: str) -> float | None:
    v = case["variants"].get(variant)
    if v is None or metric not in v["extra"]:
        return None
    m: float | None = v["extra"][metric]["median"]
    return m


def _goal_min(
    title: str, cases: list[Data], key: str, target: float, *, at_most: bool = False
) -> Data:
    """A goal met when every case's ``key`` ratio clears ``target``."""
    seen = [(c["name"], _ratio(c, key)) for c in cases]
    have = [(n, r) for n, r in seen if r is not None]
    if not have:
        return {"goal": title, "status": "not available", "detail": "no figures", "target": target}
    worst = max(have, key=lambda x: x[1]) if at_most else min(have, key=lambda x: x[1])
    ok = worst[1] <= target if at_most else worst[1] >= target
    detail = "; ".join(f"{n}: {r:.2f}×" for n, r in have)
    missing = [n for n, r in seen if r is None]
    if missing:
        detail += "; n/a: " + ", ".join(missing)
    status = "met" if ok else "missed"
    if missing and ok:
        status = "partial"
    return {
        "goal": title,
        "status": status,
        "worst": worst[1],
        "target": target,
        "detail": detail,
    }


def goals(data: Data) -> list[Data]:
    """Where each benchmark goal (issues 6, 14 and 16) stands in this run."""
    out: list[Data] = []
    pg_append = _cases(data, "append_expect", "postgres")
    out.append(
        _goal_min(
            "PostgreSQL append_expect ≥ 0.9× the simplest correct conditional insert "
            "(raw asyncpg), at 1 and at 16 streams (issue 16)",
            [c for c in pg_append if c["name"].endswith(("· 1 stream", "· 16 streams"))],
            "evsrc/limit",
            0.9,
        )
    )
    out.append(
        _goal_min(
            "PostgreSQL 100-event appends ≥ 0.8× raw asyncpg",
            _cases(data, "append_batch", "postgres"),
            "evsrc/limit",
            0.8,
        )
    )
    out.append(
        _goal_min(
            "append rate ≥ 3× the eventsourcing library (same server)",
            pg_append,
            "evsrc/peer",
            3.0,
        )
    )
    # The 1-booker case is the uncontended baseline, not a hot seat.
    hot_pg = [c for c in _cases(data, "hot_seat", "postgres") if c["params"].get("bookers", 0) > 1]
    out.append(
        _goal_min(
            "hot seat ≥ 10× eventsourcing's bookings per second",
            hot_pg,
            "evsrc/peer",
            10.0,
        )
    )
    h16 = [c for c in hot_pg if c["params"].get("bookers") == 16]
    # Issue #6's contention goal, on the booking service as it ships (batching
    # on), for every hot-seat case; the unbatched figures are shown beside it.
    contention = _goal_min(
        "hot seat on PostgreSQL (booking service as shipped, batching) ≥ 0.7× raw "
        "sequential single-row append rate",
        hot_pg,
        "evsrc/limit",
        0.7,
    )
    unbatched = [(c["name"], _ratio(c, "evsrc_nobatch/limit")) for c in hot_pg]
    shown = [f"{n}: {r:.2f}×" for n, r in unbatched if r is not None]
    if shown:
        contention["detail"] += "; without batching: " + "; ".join(shown)
    out.append(contention)
    # Issue 16 raised issue 7's 3× for 16 / 300 to 5×, and added 2× for 1,000 / 100.
    out.append(
        _goal_min(
            "hot seat on PostgreSQL (16 / 300), with batching, ≥ 5× raw sequential "
            "single-row append rate",
            h16,
            "evsrc/limit",
            5.0,
        )
    )
    out.append(
        _goal_min(
            "hot seat on PostgreSQL (1,000 / 100), with batching, ≥ 2× raw sequential "
            "single-row append rate",
            [c for c in hot_pg if c["params"].get("bookers") == 1000],
            "evsrc/limit",
            2.0,
        )
    )
    out.append(_goal_cpu(data))
    # The batching goal is about PostgreSQL, where an append waits for a commit
    # and commands queue behind it. In memory an append completes without
    # yielding, so no command ever waits and no batch forms: its count is shown
    # for information, not judged.
    h1000 = [c for c in _cases(data, "hot_seat") if c["params"].get("bookers") == 1000]
    appends = [
        (c["name"], c["params"].get("backend"), _extra(c, "evsrc", "appends")) for c in h1000
    ]
    judged = [(n, a) for n, b, a in appends if a is not None and b == "postgres"]
    counted = "; ".join(
        f"{n}: {a:.0f} appends"
        + ("" if b == "postgres" else " (not judged: no batch forms in memory)")
        for n, b, a in appends
        if a is not None
    )
    goal = "1,000 bookers for 100 seats on PostgreSQL need at most 10 appends (batching)"
    if judged:
        worst = max(a for _, a in judged)
        out.append(
            {
                "goal": goal,
                "status": "met" if worst <= 10 else "missed",
                "worst": worst,
                "target": 10,
                "detail": counted,
            }
        )
    else:
        out.append(
            {
                "goal": goal,
                "status": "not available",
                "detail": counted or "no figures",
                "target": 10,
            }
        )
    replay = [c for c in _cases(data, "read", "postgres") if c["params"].get("what") == "stream"]
    out.append(
        _goal_min(
            "replay of 10,000 events ≥ 0.5× raw asyncpg fetch of the same rows",
            replay,
            "evsrc/limit",
            0.5,
        )
    )
    # Issue 16 raised the replay goal to 0.7×.
    out.append(
        _goal_min(
            "PostgreSQL replay of 10,000 events ≥ 0.7× raw asyncpg fetch of the same rows "
            "(issue 16)",
            replay,
            "evsrc/limit",
            0.7,
        )
    )
    # Issue 14: SQLite, as shipped (appends on the writer thread), beside raw sqlite3
    # on the event loop; inline_appends and the thread-hop diagnostic are not judged.
    sqlite = _cases(data, "sqlite", "sqlite")
    out.append(
        _goal_min(
            "SQLite append_expect ≥ 0.7× raw sqlite3's same conditional insert in BEGIN "
            "IMMEDIATE, synchronous=FULL, sequential (issue 14)",
            [c for c in sqlite if c["name"].endswith("sequential, synchronous=FULL")],
            "evsrc/limit",
            0.7,
        )
    )
    out.append(
        _goal_min(
            "SQLite replay of a 10,000-event stream ≥ 0.5× a raw fetch (issue 14)",
            [c for c in sqlite if "replay" in c["name"]],
            "evsrc/limit",
            0.5,
        )
    )
    out.append(
        _goal_min(
            "decision cost at roster 10,000 within 1.5× of roster 10 (time ratio)",
            _cases(data, "decision"),
            "cost_ratio",
            1.5,
            at_most=True,
        )
    )
    mem = list(_cases(data, "append_expect", "memory"))
    out.append(
        _goal_min(
            "in-memory append_expect ≥ 0.6× a dict-of-lists store doing the contract's "
            "minimum (id, seq, position, a copy of the data)",
            mem,
            "evsrc/limit",
            0.6,
        )
    )
    # Issue 12: transactional catch-up, and what idle live subscribers cost writers.
    out.append(
        _goal_min(
            "transactional projector catch-up ≥ 0.25× reading through evsrc and inserting "
            "the same rows in 500-row transactions with raw asyncpg",
            [
                c
                for c in _cases(data, "read", "postgres")
                if c["params"].get("what") == "projector_tx"
            ],
            "evsrc/limit",
            0.25,
        )
    )
    out.append(
        _goal_min(
            "appends with 50 idle subscribers (to a prefix nobody writes) ≥ 0.85× appends "
            "with none, on PostgreSQL",
            _cases(data, "subscribers", "postgres"),
            "evsrc/limit",
            0.85,
        )
    )
    return out


def _goal_cpu(data: Data) -> Data:
    """Issue 16: the command handler's CPU per command, in every handler_cpu case."""
    title = "command handler CPU ≤ 15 µs per command on a warm in-memory aggregate"
    seen = [(c["name"], _extra(c, "evsrc", "us_per_command")) for c in _cases(data, "handler_cpu")]
    have = [(n, v) for n, v in seen if v is not None]
    if not have:
        return {"goal": title, "status": "not available", "detail": "no figures", "target": 15}
    worst = max(v for _, v in have)
    return {
        "goal": title,
        "status": "met" if worst <= 15 else "missed",
        "worst": worst,
        "target": 15,
        "detail": "; ".join(f"{n}: {v:.1f} µs" for n, v in have),
    }


# -- markdown -----------------------------------------------------------------


def _num(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def _scenario_table(s: Data) -> list[str]:
    """One table per backend (each with its own variant columns), unavailability as footnotes."""
    lines: list[str] = []
    if not s["cases"]:
        return ["_no cases ran_", ""]
    groups: dict[str, list[Data]] = {}
    for c in s["cases"]:
        key = c["params"].get("group", c["params"].get("backend", ""))
        groups.setdefault(str(key), []).append(c)
    for cases in groups.values():
        lines += _group_table(cases)
    return lines


def _group_table(cases: list[Data]) -> list[str]:
    variants: list[str] = []
    labels: dict[str, str] = {}
    for c in cases:
        for k, v in c["variants"].items():
            if k not in variants:
                variants.append(k)
                labels[k] = v["label"]
    ratio_keys: list[str] = []
    for c in cases:
        for k in c["ratios"]:
            if k not in ratio_keys:
                ratio_keys.append(k)
    notes: list[str] = []

    def cell(case: Data, variant: str) -> str:
        v = case["variants"].get(variant)
        if v is None:
            return "—"
        if v["status"] != "ok":
            if v["status"] not in notes:
                notes.append(v["status"])
            return f"n/a [{notes.index(v['status']) + 1}]"
        return _num(v["median"])

    def ratio_head(k: str) -> str:
        if "/" not in k:
            return {"cost_ratio": "time per decision, big / small"}.get(k, k)
        a, _, b = k.partition("/")
        names = {"limit": "limit", "peer": "eventsourcing", "evsrc": "evsrc"}
        return f"{names.get(a, labels.get(a, a))} / {names.get(b, labels.get(b, b))}"

    head = ["case", "unit", *[labels[v] for v in variants], *[ratio_head(k) for k in ratio_keys]]
    lines = ["| " + " | ".join(head) + " |"]
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
    for c in cases:
        row = [c["name"], c["unit"]]
        row += [cell(c, v) for v in variants]
        row += [
            "n/a" if c["ratios"].get(k) is None else f"{c['ratios'][k]:.2f}×" for k in ratio_keys
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for i, n in enumerate(notes, 1):
        lines.append(f"[{i}] {n}  ")
    if notes:
        lines.append("")
    return lines


_HOT_METRICS = [
    ("bookings_per_s", "bookings/s"),
    ("booked", "booked"),
    ("conflicts", "conflicts"),
    ("attempts_per_booking", "attempts/booking"),
    ("appends", "appends issued"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
]


def _hot_table(s: Data) -> list[str]:
    lines = [
        "| case | who | " + " | ".join(t for _, t in _HOT_METRICS) + " |",
        "|---|---|" + "---:|" * len(_HOT_METRICS),
    ]
    for c in s["cases"]:
        for v, info in c["variants"].items():
            if info["status"] != "ok" or "bookings_per_s" not in info["extra"]:
                continue
            cells = [_num(_extra(c, v, m)) for m, _ in _HOT_METRICS]
            lines.append(f"| {c['name']} | {info['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def markdown(data: Data) -> str:
    """The run as a markdown document: machine, goals, one table per scenario."""
    m = data["machine"]
    out = [
        "# evsrc benchmarks",
        "",
        f"Run {data['started']} → {data['finished']}"
        + (" (**quick smoke: sizes too small to mean anything**)" if data["quick"] else "")
        + f"; every figure is the median of {data['reps']} interleaved repetitions.",
        "",
        f"Machine: {m.get('cores')} cores ({m.get('cpu')}), {m.get('ram_gib')} GiB RAM, "
        f"PostgreSQL {m.get('postgresql', 'n/a')}, Python {m.get('python')}, "
        f"{m.get('platform')}.",
        "",
        f"Command: `{data['command']}`",
        "",
        "Variants: **evsrc**; the **limit** — in memory a minimal dict-of-lists store with "
        "the same optimistic check; on PostgreSQL, for appends, the simplest correct "
        "conditional insert through raw asyncpg (evsrc's own SQL, "
        "`evsrc/postgres/sql/queries.sql`, is a diagnostic column), for reads raw asyncpg "
        "fetching the same rows; arguments prepared before the clock; the "
        "**peer** — the `eventsourcing` library "
        "(PostgreSQL persistence, same server). Ratios are evsrc over the column named.",
        "",
        "## Goals",
        "",
        "| goal | status | measured |",
        "|---|---|---|",
    ]
    for g in data.get("goals", []):
        out.append(f"| {g['goal']} | **{g['status']}** | {g['detail']} |")
    out.append("")
    for s in data["scenarios"]:
        out.append(f"## {s['name']}: {s['title']}")
        out.append("")
        if s["status"] != "ok":
            out.append(f"**Status: {s['status']}**")
            out.append("")
        out += _scenario_table(s)
        if s["name"] == "hot_seat":
            out += _hot_table(s)
        failed = [c for c in s["checks"] if not c["ok"]]
        if s["checks"]:
            out.append(
                f"Checks: {len(s['checks']) - len(failed)}/{len(s['checks'])} passed"
                + ("" if not failed else " — FAILED: " + "; ".join(c["name"] for c in failed))
                + "."
            )
            out.append("")
        for n in s["notes"]:
            if "Traceback" in n:
                out.append("```\n" + n.strip() + "\n```")
            else:
                out.append(f"- {n}")
        if s["notes"]:
            out.append("")
    return "\n".join(out)


# -- chart ----------------------------------------------------------------------


def chart(data: Data, path: Path) -> str:
    """A PNG of append throughput against concurrency, limit drawn in; returns a status."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"chart {SKIP_BENCH}"

    panels: list[tuple[str, list[Data]]] = [
        ("PostgreSQL: append_expect (1 event)", _cases(data, "append_expect", "postgres")),
        ("In memory: append_expect (1 event)", _cases(data, "append_expect", "memory")),
    ]
    hot = _cases(data, "hot_seat", "postgres")
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    styles: dict[str, dict[str, Any]] = {
        "evsrc": {"color": "tab:blue", "marker": "o", "linestyle": "-"},
        "limit": {"color": "black", "marker": "s", "linestyle": "--"},
        "peer": {"color": "tab:orange", "marker": "^", "linestyle": "-"},
        "evsrc_nonotify": {"color": "tab:blue", "marker": ".", "linestyle": ":", "alpha": 0.6},
    }
    for ax, (title, cases) in zip(axes[:2], panels, strict=True):
        conc = [c for c in cases if not c["params"].get("sequential")]
        conc.sort(key=lambda c: c["params"]["streams"])
        labels: dict[str, str] = {}
        for v in ("evsrc", "evsrc_nonotify", "limit", "peer"):
            xs, ys = [], []
            for c in conc:
                y = _median(c, v)
                if y is not None:
                    xs.append(c["params"]["streams"])
                    ys.append(y)
                    labels[v] = c["variants"][v]["label"]
            if xs:
                label = labels[v] + (" (the limit)" if v == "limit" else "")
                ax.plot(xs, ys, label=label, **styles[v])
        seq = next((c for c in cases if c["params"].get("sequential")), None)
        if seq is not None and _median(seq, "evsrc") is not None:
            ax.axhline(
                _median(seq, "evsrc"),
                color="tab:blue",
                alpha=0.3,
                linestyle=":",
                label="evsrc sequential",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks([1, 4, 16, 64])
        ax.set_xticklabels(["1", "4", "16", "64"])
        ax.set_xlabel("concurrent streams (one writer each)")
        ax.set_ylabel("appends / s")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not available", ha="center", transform=ax.transAxes)
    ax = axes[2]
    bars: list[tuple[str, float, str]] = []
    colors = {
        "evsrc": "tab:blue",
        "evsrc_nobatch": "tab:cyan",
        "limit": "black",
        "peer": "tab:orange",
    }
    for c in hot:
        for v, info in c["variants"].items():
            if info["median"] is not None:
                short = (
                    c["name"]
                    .replace("postgres · ", "")
                    .replace(" bookers / ", " bookers/")
                    .replace(" seats", " seats")
                )
                bars.append((f"{short}\n{info['label']}", info["median"], colors.get(v, "gray")))
    if bars:
        ax.barh(range(len(bars)), [b[1] for b in bars], color=[b[2] for b in bars], alpha=0.85)
        ax.set_yticks(range(len(bars)))
        ax.set_yticklabels([b[0] for b in bars], fontsize=6)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("bookings / s (limit: raw single-row appends / s)")
    else:
        ax.text(0.5, 0.5, "not available", ha="center", transform=ax.transAxes)
    ax.set_title("The hot seat on PostgreSQL")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    m = data["machine"]
    fig.suptitle(
        f"evsrc benchmarks — {m.get('cores')} cores, PostgreSQL {m.get('postgresql', 'n/a')}, "
        f"Python {m.get('python')}" + (" — QUICK SMOKE" if data["quick"] else ""),
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return "ok"


def write_all(data: Data, out: Path) -> list[Path]:
    """Write ``results-<time>.json``, ``latest.json``, ``latest.md`` and ``latest.png``."""
    stamp = data["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
    data.setdefault("outputs", {})
    png = out / "latest.png"
    data["outputs"]["chart"] = chart(data, png)
    text = json.dumps(data, indent=1)
    paths = [out / f"results-{stamp}.json", out / "latest.json"]
    for p in paths:
        p.write_text(text)
    md = out / "latest.md"
    md.write_text(markdown(data) + "\n")
    paths.append(md)
    if data["outputs"]["chart"] == "ok":
        paths.append(png)
    return paths


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/latest.json")
    loaded = json.loads(src.read_text())
    loaded["goals"] = goals(loaded)
    print(markdown(loaded))
