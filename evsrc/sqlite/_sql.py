"""The SQLite backend's SQL, kept as ``.sql`` package data and read with importlib.resources.

Nothing is ever substituted into these statements: every value is a bind
parameter (the read_all filters add placeholders, never values).
"""

from __future__ import annotations

import sqlite3
from functools import cache

from evsrc.sqlfiles import migration_files, named_sections, read_sql

__all__ = ["latest_version", "migrations", "queries", "schema_sql", "statements"]


def _read(*parts: str) -> str:
    return read_sql("evsrc.sqlite", *parts)


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


def _migration_files() -> tuple[tuple[int, str], ...]:
    return migration_files("evsrc.sqlite")


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
    return {
        name: "\n".join(ln for ln in body.splitlines() if not ln.lstrip().startswith("--"))
        for name, body in named_sections(_read("queries.sql")).items()
    }
