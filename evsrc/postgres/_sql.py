"""The backend's SQL, kept as ``.sql`` package data and read with importlib.resources.

``{schema}`` in a file is replaced by the quoted, validated schema name — the
only text ever substituted; every value travels as a bind parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import cache
from typing import Final, Self

from evsrc.errors import InvalidInputError
from evsrc.sqlfiles import migration_files, named_sections, read_sql

__all__ = [
    "IDENTIFIER",
    "Queries",
    "latest_version",
    "migrations",
    "qualified",
    "queries",
    "quote_schema",
    "schema_sql",
]

#: A plain SQL identifier: what a schema or table name may be (matched as a whole).
IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_IDENTIFIER: Final = 63


def quote_schema(schema: object, *, argument: str = "schema") -> str:
    """``schema`` double-quoted; ``InvalidInputError`` if it is not a plain identifier.

    The whole name must match (a trailing newline is refused), and a schema
    name may not start with ``pg_``, which PostgreSQL reserves.
    """
    if (
        type(schema) is not str
        or not IDENTIFIER.fullmatch(schema)
        or len(schema) > _MAX_IDENTIFIER
        or (argument == "schema" and schema[:3].lower() == "pg_")
    ):
        msg = (
            f"{argument} must be an SQL identifier (ASCII letters, digits, underscore; "
            f"not starting with a digit{'' if argument != 'schema' else ' or pg_'}; "
            f"at most {_MAX_IDENTIFIER} characters), got {schema!r}"
        )
        raise InvalidInputError(msg, argument=argument, value=schema)
    return f'"{schema}"'


def qualified(schema: str, table: str) -> str:
    """``"schema"."table"``, both validated as identifiers."""
    return f"{quote_schema(schema)}.{quote_schema(table, argument='name')}"


def _read(*parts: str) -> str:
    return read_sql("evsrc.postgres", *parts)


def _fill(text: str, quoted_schema: str) -> str:
    return text.replace("{schema}", quoted_schema)


def schema_sql(quoted_schema: str) -> str:
    """The whole current schema, for an empty database."""
    return _fill(_read("schema.sql"), quoted_schema)


def _migration_files() -> tuple[tuple[int, str], ...]:
    return migration_files("evsrc.postgres")


def latest_version() -> int:
    """The schema version this release writes: the number of the last migration."""
    return _migration_files()[-1][0]


def migrations(quoted_schema: str, after: int) -> list[tuple[int, str]]:
    """``(version, sql)`` of every migration newer than ``after``, in order."""
    return [
        (n, _fill(_read("migrations", name), quoted_schema))
        for n, name in _migration_files()
        if n > after
    ]


@cache
def _named_queries() -> dict[str, str]:
    text = _read("queries.sql")
    return named_sections(text)


def queries(quoted_schema: str) -> dict[str, str]:
    """The named queries of ``queries.sql`` with the schema filled in."""
    return {name: _fill(body, quoted_schema) for name, body in _named_queries().items()}


@dataclass(frozen=True, slots=True)
class Queries:
    """The named queries of ``queries.sql`` for one schema, one attribute each."""

    append: str
    append_one: str
    append_refused: str
    find_ids: str
    last_seq: str
    read_forward: str
    read_backward: str
    read_all: str
    horizon: str
    oldest_xact: str
    schema_version: str
    stamp_version: str
    notify: str
    differing_ids: str
    order_broken: str
    repair_checkpoints: str
    repair_events: str
    repair_positions: str
    repaired: str
    checkpoint_exists: str
    read_all_types: str
    read_all_prefix: str
    ready_head: str
    head: str
    head_types: str
    delete_stream: str
    truncate: str
    get_metadata: str
    set_metadata: str
    clear_metadata: str
    retained_streams: str
    sweep_bounds: str
    sweep_range: str

    @classmethod
    def of(cls, quoted_schema: str) -> Self:
        """Every named query with ``quoted_schema`` filled in."""
        named = queries(quoted_schema)
        return cls(**{f.name: named[f.name] for f in fields(cls)})
