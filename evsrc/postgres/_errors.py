"""asyncpg and socket errors into evsrc errors: :func:`translate`; :func:`mapped` wraps calls."""

from __future__ import annotations

import contextlib
import re
import socket
import uuid
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import asyncpg
from asyncpg import exceptions as pgexc

from evsrc.errors import (
    ConfigurationError,
    DuplicateEventIdError,
    EvsrcError,
    InvalidInputError,
    OutcomeUnknownError,
    SchemaError,
    StoreClosedError,
    StoreUnavailableError,
)
from evsrc.urls import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["DRIVER_ERRORS", "SeqTakenError", "mapped", "redacted", "scrub", "translate"]

_ID_KEY: Final = "evsrc_events_id_key"
_SEQ_KEY: Final = "evsrc_events_pkey"
_UUID_RE: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
#: What the driver and the socket raise (everything :func:`translate` maps).
DRIVER_ERRORS: Final = (
    OSError,
    TimeoutError,
    ValueError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
#: Errors that retrying will not cure: the operator has to fix something first.
_CONFIGURATION_ERRORS: Final = (
    pgexc.InvalidCatalogNameError,  # 3D000 unknown database
    pgexc.InvalidAuthorizationSpecificationError,  # 28000 unknown role, no pg_hba entry
    pgexc.InvalidPasswordError,  # 28P01
    pgexc.InsufficientPrivilegeError,  # 42501 e.g. setup() without CREATE
    asyncpg.ClientConfigurationError,  # asyncpg refused the DSN or an option
)
#: Errors that mean "this session is not at READ COMMITTED" when an append raises them.
_ISOLATION_ERRORS: Final = (pgexc.SerializationError,)


def translate(
    exc: BaseException,
    *,
    stream: str | None = None,
    sent: bool = False,
    closed: bool = False,
    connecting: str | None = None,
) -> EvsrcError:
    """The evsrc error for an asyncpg (or socket) error — the one place they are mapped.

    ``sent`` is true once an append has gone to the server: a lost connection
    then leaves its outcome unknown, where before it certainly did not commit.
    ``connecting`` is the DSN while a pool is being opened: errors that can only
    mean a wrong DSN or option are then ``ConfigurationError`` (the message
    names the DSN with its password redacted).
    """
    if isinstance(exc, EvsrcError):
        return exc
    if isinstance(exc, pgexc.UniqueViolationError):
        if exc.constraint_name == _ID_KEY:
            m = _UUID_RE.search(exc.detail or "")
            event_id = uuid.UUID(m.group(0)) if m else uuid.UUID(int=0)
            return DuplicateEventIdError(event_id=event_id)
        if exc.constraint_name == _SEQ_KEY:
            return SeqTakenError(str(exc))
    if isinstance(
        exc,
        (pgexc.UndefinedTableError, pgexc.UndefinedFunctionError, pgexc.InvalidSchemaNameError),
    ):
        return SchemaError(f"the evsrc schema is missing or out of date; run setup() ({exc})")
    if closed:
        return StoreClosedError()
    misconfigured = isinstance(exc, _CONFIGURATION_ERRORS) or (
        connecting is not None
        and (
            # a malformed DSN (asyncpg's own parser), an unknown server setting or
            # its bad value in the DSN, a host name that does not exist at all
            (isinstance(exc, ValueError) and not isinstance(exc, asyncpg.DataError))
            or isinstance(exc, (pgexc.UndefinedObjectError, pgexc.InvalidParameterValueError))
            or (isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_NONAME)
        )
    )
    if misconfigured:
        where = f" connecting to {redacted(connecting)}" if connecting is not None else ""
        text = scrub(f"{type(exc).__name__}: {exc}", connecting)
        return ConfigurationError(f"PostgreSQL{where}: {text}; fix the configuration, then retry")
    if isinstance(exc, _ISOLATION_ERRORS):
        return ConfigurationError(
            f"PostgreSQL: {type(exc).__name__}: {exc}. evsrc runs its statements at READ "
            "COMMITTED: a pool built outside PostgresEventStore.connect() must not default "
            "to another isolation level (see docs/postgres.md, Operations)"
        )
    if isinstance(exc, asyncpg.DataError):
        # asyncpg refused an argument before sending anything (out of range).
        return InvalidInputError(f"a value does not fit PostgreSQL: {exc}")
    if isinstance(exc, pgexc.QueryCanceledError):
        # statement_timeout or pg_cancel_backend: the statement failed before commit.
        return StoreUnavailableError(f"the statement was cancelled: {exc}")
    lost = isinstance(
        exc,
        (
            pgexc.OperatorInterventionError,  # admin shutdown, backend terminated
            pgexc.PostgresConnectionError,
            asyncpg.InterfaceError,  # includes ConnectionDoesNotExistError
            OSError,
            TimeoutError,
        ),
    )
    if lost and sent:
        return OutcomeUnknownError(
            f"the connection was lost during an append to {stream!r}; it may have committed. "
            f"Retrying it with the same event ids is safe ({type(exc).__name__}: {exc})",
            stream=stream,
        )
    where = f" ({redacted(connecting)})" if connecting is not None else ""
    text = scrub(f"{type(exc).__name__}: {exc}", connecting)
    return StoreUnavailableError(f"PostgreSQL{where}: {text}")


@contextlib.contextmanager
def mapped(
    *,
    stream: str | None = None,
    sent: bool = False,
    closed: Callable[[], bool] | None = None,
    connecting: str | None = None,
    only: tuple[type[Exception], ...] = (Exception,),
) -> Iterator[None]:
    """Raise the evsrc error for an error of the ``only`` kinds inside (see :func:`translate`).

    ``closed`` is asked when an error happens: a store closed meanwhile
    raises ``StoreClosedError``. evsrc errors pass through unchanged.
    """
    try:
        yield
    except EvsrcError:
        raise
    except only as exc:
        is_closed = closed is not None and closed()
        raise translate(
            exc, stream=stream, sent=sent, closed=is_closed, connecting=connecting
        ) from exc


def redacted(dsn: str) -> str:
    return redact_url(dsn) if "://" in dsn else "<DSN>"


def scrub(text: str, dsn: str | None) -> str:
    """``text`` with the DSN's password (if any) replaced, wherever a driver echoed it."""
    if not dsn:
        return text
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if not password:
        return text
    return text.replace(password, "***")


class SeqTakenError(EvsrcError):
    """The (stream, seq) key refused a row: another writer of the stream committed it first."""
