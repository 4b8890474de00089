"""Scenario 5: decision cost as the roster grows (placeholder until the framework lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.harness import Context

__all__ = ["run_decision"]


async def run_decision(ctx: Context) -> None:
    """Not yet written."""
    ctx.note("not available: waiting for the framework")
