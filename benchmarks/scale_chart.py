"""The chart of ``python -m benchmarks --scale`` (matplotlib, the ``bench`` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["plot"]


def plot(results: dict[str, Any], path: Path) -> None:
    """A 2×2 chart of the figures against store size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["sizes"]
    x = [r["size"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0][0]
    for who, style in (("evsrc", "-o"), ("raw", "--s")):
        ax.plot(x, [r["append"][who]["p50_ms"] for r in rows], style, label=f"{who} p50")
        ax.plot(x, [r["append"][who]["p99_ms"] for r in rows], style, alpha=0.5, label=f"{who} p99")
    ax.set_title("append_expect, one event (ms)")
    ax2 = axes[0][1]
    for what in ("last_seq", "read_stream"):
        for who, style in (("evsrc", "-o"), ("raw", "--s")):
            ax2.plot(x, [r[what][who]["p50_ms"] for r in rows], style, label=f"{what} {who} p50")
    ax2.set_title("last_seq and reading a 10-event stream, p50 (ms)")
    ax3 = axes[1][0]
    for where in ("from_start", "from_tail"):
        for who, style in (("evsrc", "-o"), ("raw", "--s")):
            ax3.plot(
                x,
                [r[f"read_all_{where}"][who] for r in rows],
                style,
                label=f"{who} {where.replace('_', ' ')}",
            )
    ax3.set_title(f"read_all over {results['read_all_events']:,} events (events/s)")
    ax4 = axes[1][1]
    ax4.plot(x, [r["table_bytes_per_event"] for r in rows], "-o", label="table")
    ax4.plot(x, [r["index_bytes_per_event"] for r in rows], "-s", label="all indexes")
    ax4.set_title("bytes per event")
    for a in (ax, ax2, ax3, ax4):
        a.set_xscale("log")
        a.set_xlabel("events in the store")
        a.set_ylim(bottom=0)
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    fig.suptitle("evsrc PostgreSQL store as it grows (10 events per stream), beside raw asyncpg")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
