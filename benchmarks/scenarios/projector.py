"""Scenario 3, last part: a framework projector catching up over the read data set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.harness import Case, NotAvailable
from benchmarks.scenarios.append import _unavailable

if TYPE_CHECKING:
    from benchmarks.harness import Context

__all__ = ["run"]


def _projection_api() -> Any:
    try:
        import evsrc.projection as projection
    except ImportError as exc:
        raise NotAvailable(f"evsrc.projection not available ({exc})") from exc
    return projection


async def run(ctx: Context, ds: Any, url: str) -> None:
    """Projector catch-up: memory; PostgreSQL with in-memory and transactional checkpoints."""
    try:
        _projection_api()
    except NotAvailable as exc:
        reason = str(exc)
    else:
        reason = "projector benchmark not written yet"
    for backend, name in (
        ("memory", f"memory · projector catch-up over {ds.total:,} events"),
        ("postgres", f"postgres · projector catch-up over {ds.total:,} events"),
    ):
        await ctx.run_case(
            Case(
                name, "events/s", {"backend": backend, "what": "projector"}, {"evsrc": "projector"}
            ),
            {"evsrc": _unavailable(reason)},
        )
