"""Stores by URL: ``await open_store("memory:")``, ``"sqlite:///path.db"``, ``"postgresql://…"``.

One string picks a backend, so an application (or its command line) can be
pointed at any store without code of its own for each. The store comes back
connected and set up (its schema created or migrated); close it with
``await store.close()`` or ``async with``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from evsrc.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from evsrc.store import EventStore

__all__ = ["SCHEMES", "open_store", "redact_url", "sqlite_path"]

#: The URL schemes :func:`open_store` knows.
SCHEMES = ("memory", "sqlite", "postgresql", "postgres")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _scheme(url: object) -> str:
    if type(url) is not str:
        msg = f"a store URL must be a str, got {type(url).__name__}"
        raise ConfigurationError(msg)
    if url in ("memory:", "memory://"):
        return "memory"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        msg = f"malformed store URL {redact_url(url)!r}: {exc}"
        raise ConfigurationError(msg) from exc
    scheme = parts.scheme.lower()
    if scheme == "memory":
        msg = f"an in-memory store URL is exactly 'memory:', got {url!r}"
        raise ConfigurationError(msg)
    if scheme not in SCHEMES:
        msg = (
            f"unknown store URL scheme {parts.scheme!r} in {redact_url(url)!r}; "
            "use memory:, sqlite:///path.db or postgresql://…"
        )
        raise ConfigurationError(msg)
    return scheme


async def open_store(url: str, **options: Any) -> EventStore:
    """Open the store ``url`` names, connected and set up.

    - ``memory:`` — an :class:`~evsrc.memory.InMemoryEventStore` (nothing kept);
    - ``sqlite:///relative.db``, ``sqlite:////absolute/path.db`` — a SQLite file;
    - ``postgresql://user@host:port/db`` (or ``postgres://``) — PostgreSQL
      (needs the ``postgres`` extra).

    ``options`` go to the backend's ``connect``. Raises ``ConfigurationError``
    for an unknown scheme or a malformed URL (and whatever the backend raises
    for a store it cannot reach or use).
    """
    scheme = _scheme(url)
    if scheme == "memory":
        from evsrc.memory import InMemoryEventStore

        if options:
            msg = f"memory: takes no options, got {sorted(options)}"
            raise ConfigurationError(msg)
        return InMemoryEventStore()
    if scheme == "sqlite":
        return await _open_sqlite(url, options)
    try:
        from evsrc.postgres import PostgresEventStore
    except ImportError as exc:  # pragma: no cover - the postgres extra is missing
        msg = "postgresql:// needs asyncpg: pip install 'evsrc[postgres]'"
        raise ConfigurationError(msg) from exc
    store = await PostgresEventStore.connect(url, **options)
    try:
        await store.setup()
    except BaseException:
        await store.close()
        raise
    return store


_BOOLS = {"true": True, "1": True, "yes": True, "on": True}
_BOOLS.update({"false": False, "0": False, "no": False, "off": False})


def _bool(value: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``; any case)."""
    try:
        return _BOOLS[value.lower()]
    except KeyError:
        msg = f"not a boolean: {value!r} (use true or false)"
        raise ValueError(msg) from None


#: Query parameters a ``sqlite:///`` URL may carry, and how each is parsed.
_SQLITE_PARAMS: dict[str, Callable[[str], Any]] = {
    "synchronous": str,
    "busy_timeout": float,
    "poll_interval": float,
    "readers": int,
    "inline_appends": _bool,
}


def sqlite_path(url: str) -> tuple[str, dict[str, Any]]:
    """The file path and ``connect`` options a ``sqlite:///…`` URL names.

    ``sqlite:///relative/path.db`` is relative to the working directory,
    ``sqlite:////absolute/path.db`` absolute (the path is percent-decoded).
    The query may set ``synchronous``, ``busy_timeout``, ``poll_interval``,
    ``readers`` and ``inline_appends`` (``true`` or ``false``; also ``1``/``0``,
    ``yes``/``no``, ``on``/``off``). Raises ``ConfigurationError`` for anything else.
    """
    head, sep, rest = url.partition(":")
    if not sep or head.lower() != "sqlite":
        msg = f"not a sqlite URL: {url!r}"
        raise ConfigurationError(msg)
    if not rest.startswith("///"):
        msg = (
            f"a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db "
            f"(no host), got {url!r}"
        )
        raise ConfigurationError(msg)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # pragma: no cover - urlsplit accepts what passed above
        msg = f"malformed SQLite URL {url!r}: {exc}"
        raise ConfigurationError(msg) from exc
    if parts.fragment:
        msg = f"a SQLite URL has no #fragment, got {url!r}"
        raise ConfigurationError(msg)
    path = unquote(parts.path[1:])
    if not path or path.endswith("/") or path == ":memory:":
        msg = (
            f"a SQLite URL must name a database file, got {url!r} "
            "(for a store that keeps nothing, use memory:)"
        )
        raise ConfigurationError(msg)
    options: dict[str, Any] = {}
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        msg = f"malformed query in SQLite URL {url!r}: {exc}"
        raise ConfigurationError(msg) from exc
    for key, value in query:
        parse = _SQLITE_PARAMS.get(key)
        if parse is None:
            msg = (
                f"unknown parameter {key!r} in SQLite URL {url!r}; "
                f"known: {', '.join(_SQLITE_PARAMS)}"
            )
            raise ConfigurationError(msg)
        if key in options:
            msg = f"parameter {key!r} appears twice in SQLite URL {url!r}"
            raise ConfigurationError(msg)
        try:
            options[key] = parse(value)
        except ValueError as exc:
            msg = f"bad value {value!r} for {key!r} in SQLite URL {url!r}"
            raise ConfigurationError(msg) from exc
    return path, options


async def _open_sqlite(url: str, options: dict[str, Any]) -> EventStore:
    from evsrc.sqlite import SqliteEventStore

    path, from_url = sqlite_path(url)
    clash = sorted(set(from_url) & set(options))
    if clash:
        msg = f"{', '.join(clash)} given both in the URL and as options"
        raise ConfigurationError(msg)
    unknown = sorted(set(options) - set(_SQLITE_PARAMS))
    if unknown:
        msg = f"unknown SQLite options {unknown}; known: {', '.join(_SQLITE_PARAMS)}"
        raise ConfigurationError(msg)
    store = await SqliteEventStore.connect(path, **from_url, **options)
    try:
        await store.setup()
    except BaseException:
        await store.close()
        raise
    return store
