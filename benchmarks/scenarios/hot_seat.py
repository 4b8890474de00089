"""Scenario 5: hot_seat cost as the roster grows (placeholder until the framework lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.harness import Context

__all__ = ["run_hot_seat"]


async def run_hot_seat(ctx: Context) -> None:
    """Not yet written."""
    ctx.note("not available: waiting for the framework")
