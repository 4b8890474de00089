"""Stores by URL: ``await open_store("memory:")``, ``"sqlite:///path.db"``, ``"postgresql://…"``.

One string picks a backend, so an application (or its command line) can be
pointed at any store without code of its own for each. The store comes back
connected and set up (its schema created or migrated); close it with
``await store.close()`` or ``async with``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from evsrc.errors import ConfigurationError

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["SCHEMES", "open_store", "redact_url"]

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


async def _open_sqlite(url: str, options: dict[str, Any]) -> EventStore:
    msg = "the SQLite backend is not available in this build"
    raise ConfigurationError(msg)
