"""A tiny progress display: a redrawn bar on a terminal, periodic plain lines elsewhere."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Shows ``done`` of ``total`` with a label; call ``update`` often, ``finish`` once.

    On a TTY the bar is redrawn in place at most every ``tty_interval``
    seconds; otherwise a plain line is written every ``plain_interval``
    seconds, so logs stay readable.
    """

    def __init__(
        self,
        total: int,
        out: TextIO,
        *,
        tty: bool | None = None,
        width: int = 30,
        tty_interval: float = 0.05,
        plain_interval: float = 1.0,
    ) -> None:
        self.total = max(total, 1)
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.width = width
        self.interval = tty_interval if self.tty else plain_interval
        self.started = time.monotonic()
        self._last = 0.0

    def _line(self, done: int, label: str) -> str:
        elapsed = time.monotonic() - self.started
        if self.tty:
            filled = self.width * done // self.total
            bar = "█" * filled + "·" * (self.width - filled)
            count = f"{done:>{len(str(self.total))}}/{self.total}"
            # \x1b[K clears what a longer previous line left behind.
            return f"\r[{bar}] {count}  {label}  {elapsed:5.1f}s\x1b[K"
        return (
            f"progress {done}/{self.total} ({100 * done // self.total}%)  {label}  {elapsed:.1f}s\n"
        )

    def update(self, done: int, label: str = "") -> None:
        """Report progress; drawn only if the interval has passed."""
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        self.out.write(self._line(done, label))
        self.out.flush()

    def finish(self, done: int, label: str = "") -> None:
        """Draw the final state and end the line."""
        self.out.write(self._line(done, label))
        if self.tty:
            self.out.write("\n")
        self.out.flush()
