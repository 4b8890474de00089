"""Output of the admin command: rich tables for people, JSON for scripts."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Output"]


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


class Output:
    """Writes results to stdout: a table per result, or one JSON document (``json_mode``).

    Tables use ``rich`` when it is installed (``pip install 'evsrc[admin]'``)
    and plain tab-separated columns otherwise.
    """

    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        try:
            from rich.console import Console
        except ImportError:  # the admin extra is missing
            self._console: Any = None
            self._errors: Any = None
        else:
            self._console = Console(soft_wrap=True)
            self._errors = Console(stderr=True)

    def _json(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    @contextlib.contextmanager
    def working(self, what: str) -> Iterator[None]:
        """A spinner on stderr while slow work runs (only on a terminal)."""
        if self._errors is None or not self._errors.is_terminal:
            yield
            return
        with self._errors.status(what):
            yield

    def table(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        """``rows`` as a table with ``columns`` (JSON: the list of rows)."""
        if self.json_mode:
            self._json(rows)
            return
        if self._console is None:
            print("\t".join(columns))
            for row in rows:
                print("\t".join(_text(row.get(c)) for c in columns))
            return
        from rich.table import Table

        table = Table(*columns)
        for row in rows:
            table.add_row(*(_text(row.get(c)) for c in columns))
        self._console.print(table)

    def facts(self, title: str, facts: dict[str, Any]) -> None:
        """A two-column table of ``facts`` (JSON: the dict)."""
        if self.json_mode:
            self._json(facts)
            return
        self.table(["", title], [{"": key, title: _text(value)} for key, value in facts.items()])

    def status(self, facts: dict[str, Any]) -> None:
        """The store's status: facts, then its projections, then what holds readers back."""
        if self.json_mode:
            self._json(facts)
            return
        projections = facts.get("projections") or []
        oldest = facts.get("oldest_transaction")
        plain = {k: v for k, v in facts.items() if k not in ("projections", "oldest_transaction")}
        self.facts("status", plain)
        if projections:
            self.table(["name", "checkpoint", "lag"], projections)
        if oldest:
            self.facts("oldest open transaction (holds the global order back)", oldest)

    def line(self, row: dict[str, Any]) -> None:
        """One event of a followed log: a JSON line, or a line of text."""
        if self.json_mode:
            self._json(row)
            return
        text = (
            f"{row['checkpoint']}  {row['stream']}#{row['seq']}  {row['type']}"
            f" v{row['version']}  {_text(row['data'])}"
        )
        if self._console is None:
            print(text, flush=True)
        else:
            self._console.print(text, markup=False, highlight=False)
