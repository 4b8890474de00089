"""How the SQLite backend maps ``sqlite3`` errors to evsrc's, and ends transactions.

Every ``sqlite3`` error becomes an evsrc error here, in :func:`translate`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Final

from evsrc.errors import (
    ConfigurationError,
    EvsrcError,
    InvalidInputError,
    OutcomeUnknownError,
    SchemaError,
    StoreClosedError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["commit", "is_busy", "mapped", "rollback", "translate"]

_BUSY_CODES: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (primary codes)
_CONFIG_CODES: Final = frozenset({3, 8, 14, 23, 26})  # PERM, READONLY, CANTOPEN, AUTH, NOTADB


def error_code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    if error_code(exc) in _BUSY_CODES:
        return True
    text = str(exc)
    return "database is locked" in text or "database table is locked" in text


def translate(
    exc: BaseException, *, stream: str | None = None, committing: bool = False
) -> EvsrcError:
    """The evsrc error for a ``sqlite3`` (or OS) error — the one place they are mapped.

    ``committing`` is true while an append's COMMIT runs: a failure then leaves
    its outcome unknown, where before it certainly did not commit.
    """
    if isinstance(exc, EvsrcError):
        return exc
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
        return StoreClosedError()
    if isinstance(exc, OverflowError):
        return InvalidInputError(f"a value does not fit SQLite's 64-bit integers: {exc}")
    if isinstance(exc, sqlite3.Error):
        code = error_code(exc)
        if is_busy(exc):
            return StoreUnavailableError(
                f"the SQLite file stayed locked by another connection past the busy timeout ({exc})"
            )
        if code in _CONFIG_CODES:
            return ConfigurationError(f"cannot use the SQLite file: {text}")
        if "no such table" in str(exc):
            return SchemaError(f"the evsrc schema is missing; run setup() ({exc})")
    if committing:
        return OutcomeUnknownError(
            f"the commit of an append to {stream!r} failed; it may have committed. "
            f"Retrying it with the same event ids is safe ({text})",
            stream=stream,
        )
    return StoreUnavailableError(f"SQLite: {text}")


@contextlib.contextmanager
def mapped(*, stream: str | None = None) -> Iterator[None]:
    """Raise every ``sqlite3``/OS error in the block as its evsrc error."""
    try:
        yield
    except (sqlite3.Error, OSError, OverflowError) as exc:
        raise translate(exc, stream=stream) from exc


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def commit(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        rollback(conn)
        raise translate(exc, committing=True) from exc
