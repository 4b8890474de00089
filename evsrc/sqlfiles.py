"""SQL kept as package data: a backend's ``sql/`` folder, its named queries and numbered migrations.

A backend package holds ``sql/schema.sql``, ``sql/queries.sql`` (statements
each after a ``-- name: x`` line) and ``sql/migrations/NNNN_what.sql``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

__all__ = ["migration_files", "named_sections", "read_sql"]

_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_\w+\.sql$")


def read_sql(package: str, *parts: str) -> str:
    """The text of ``sql/<parts>`` in ``package``."""
    return resources.files(package).joinpath("sql", *parts).read_text("utf-8")


def named_sections(text: str) -> dict[str, str]:
    """The statements of a queries file by name, each stripped (comments kept)."""
    parts = _NAME_LINE.split(text)
    # parts: [preamble, name1, body1, name2, body2, ...]
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


@cache
def migration_files(package: str) -> tuple[tuple[int, str], ...]:
    """``(number, file name)`` of ``package``'s migrations, in order, numbered 1..n."""
    folder = resources.files(package).joinpath("sql", "migrations")
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
