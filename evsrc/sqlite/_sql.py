"""The SQLite backend's SQL, kept as ``.sql`` package data and read with importlib.resources.

Nothing is ever substituted into these statements: every value is a bind
parameter (the read_all filters add placeholders, never values).
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache
from importlib import resources

__all__ = ["latest_version", "migrations", "queries", "schema_sql", "statements"]

_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_\w+\.sql$")


def _read(*parts: str) -> str:
    return resources.files("evsrc.sqlite").joinpath("sql", *parts).read_text("utf-8")


def statements(script: str) -> list[str]:
    """Split a script into complete statements (``executescript`` would commit first)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()
    ):  # pragma: no cover - a packaging bug
        msg = f"incomplete SQL statement: {buf.strip()[:80]!r}"
        raise RuntimeError(msg)
    return out


def schema_sql() -> list[str]:
    """The whole current schema, statement by statement, for a new file."""
    return statements(_read("schema.sql"))


@cache
def _migration_files() -> tuple[tuple[int, str], ...]:
    folder = resources.files("evsrc.sqlite").joinpath("sql", "migrations")
    found = []
    for entry in folder.iterdir():
        m = _MIGRATION.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name))
    found.sort()
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):  # pragma: no cover - a packaging bug
        msg = f"migrations must be numbered 1..n without gaps, found {numbers}"
        raise RuntimeError(msg)
    return tuple(found)


def latest_version() -> int:
    """The schema version this release writes: the number of the last migration."""
    return _migration_files()[-1][0]


def migrations(after: int) -> list[tuple[int, list[str]]]:
    """``(version, statements)`` of every migration newer than ``after``, in order."""
    return [
        (n, statements(_read("migrations", name))) for n, name in _migration_files() if n > after
    ]


@cache
def queries() -> dict[str, str]:
    """The named statements of ``queries.sql``."""
    parts = _NAME_LINE.split(_read("queries.sql"))
    # parts: [preamble, name1, body1, name2, body2, ...]
    return {
        parts[i]: "\n".join(
            ln for ln in parts[i + 1].strip().splitlines() if not ln.lstrip().startswith("--")
        )
        for i in range(1, len(parts), 2)
    }
