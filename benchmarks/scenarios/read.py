"""Scenario 5: read cost as the roster grows (placeholder until the framework lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.harness import Context

__all__ = ["run_read"]


async def run_read(ctx: Context) -> None:
    """Not yet written."""
    ctx.note("not available: waiting for the framework")
