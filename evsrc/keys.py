"""Per-subject encryption keys: the key store behind crypto-shredding.

A *subject* is the person (or anything else) whose personal fields are
encrypted; each subject has one random 256-bit key and a random *key id*.
Encrypted fields name only the key id, never the subject. ``forget(subject)``
deletes the subject's row: every field encrypted with that key becomes
unreadable, wherever a copy of it lives, unless that copy also holds the key
(see docs/lifecycle.md, "Forgetting a person").

:class:`KeyStore` is the interface and a small cache; :class:`InMemoryKeyStore`
keeps keys in a dict. ``evsrc.sqlite.keys.SqliteKeyStore`` and
``evsrc.postgres.keys.PostgresKeyStore`` keep them in a table beside the
events. :func:`key_store_for` picks the one that matches an event store.
"""

from __future__ import annotations

import secrets
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Final, NamedTuple, Self

from evsrc.errors import ConfigurationError, InvalidInputError
from evsrc.store import DelegatingStore

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from types import TracebackType

    from evsrc.store import EventStore

__all__ = [
    "DEFAULT_KEY_CACHE_TTL",
    "MAX_SUBJECT_LENGTH",
    "InMemoryKeyStore",
    "KeyStore",
    "SubjectKey",
    "check_subject",
    "key_store_for",
    "new_subject_key",
]

#: Longest subject, in characters.
MAX_SUBJECT_LENGTH: Final = 255
#: How long a key store trusts its cached keys, in seconds (see :class:`KeyStore`).
DEFAULT_KEY_CACHE_TTL: Final = 10.0


class SubjectKey(NamedTuple):
    """A subject's key: ``key_id`` (32 hex digits, random) and ``key`` (32 random bytes)."""

    key_id: str
    key: bytes


def new_subject_key() -> SubjectKey:
    """A fresh random key and key id."""
    return SubjectKey(secrets.token_hex(16), secrets.token_bytes(32))


def check_subject(subject: object) -> str:
    """Return ``subject`` if it is a valid subject, else raise ``InvalidInputError``.

    A subject is a non-empty str of at most ``MAX_SUBJECT_LENGTH`` characters
    of valid Unicode without NUL.
    """
    if type(subject) is not str:
        msg = f"subject must be a str, got {type(subject).__name__}"
        raise InvalidInputError(msg, argument="subject", value=subject)
    if not subject or len(subject) > MAX_SUBJECT_LENGTH or "\x00" in subject:
        msg = (
            f"subject must be a non-empty str of at most {MAX_SUBJECT_LENGTH} characters "
            "without NUL"
        )
        raise InvalidInputError(msg, argument="subject", value=subject)
    try:
        subject.encode()
    except UnicodeEncodeError:
        msg = "subject must be valid Unicode (it contains a lone surrogate)"
        raise InvalidInputError(msg, argument="subject", value=subject) from None
    return subject


class KeyStore(ABC):
    """Where subjects' keys live; a subclass implements three primitives.

    ``key_for(subject)`` returns the subject's key, creating it on first use
    (two writers creating it at once end with one key: the store keeps the
    first and both read it back). ``keys(key_ids)`` returns the keys that
    still exist. ``forget(subject)`` deletes the key.

    Keys are cached for ``cache_ttl`` seconds. ``forget`` drops this
    instance's cache entries at once; another process (or another key store
    instance) keeps decrypting with its cached copy for at most ``cache_ttl``.
    """

    def __init__(
        self, *, cache_ttl: float = DEFAULT_KEY_CACHE_TTL, clock: Callable[[], float] | None = None
    ) -> None:
        if isinstance(cache_ttl, bool) or not isinstance(cache_ttl, int | float) or cache_ttl < 0:
            msg = f"cache_ttl must be a number of seconds >= 0, got {cache_ttl!r}"
            raise InvalidInputError(msg, argument="cache_ttl", value=cache_ttl)
        self.cache_ttl = float(cache_ttl)
        self._clock = clock or time.monotonic
        self._by_subject: dict[str, tuple[SubjectKey, float]] = {}
        self._by_id: dict[str, tuple[bytes, float]] = {}

    # -- primitives -------------------------------------------------------------------

    async def setup(self) -> None:  # noqa: B027 - optional: the in-memory store needs none
        """Create the key table if it does not exist; harmless to run again."""

    @abstractmethod
    async def _insert_or_get(self, subject: str, candidate: SubjectKey) -> SubjectKey:
        """Store ``candidate`` unless ``subject`` has a key; return the stored key."""

    @abstractmethod
    async def _fetch(self, key_ids: list[str]) -> dict[str, bytes]:
        """The stored keys among ``key_ids``."""

    @abstractmethod
    async def _delete(self, subject: str) -> str | None:
        """Delete ``subject``'s key; its key id, or ``None`` if it had none."""

    async def close(self) -> None:  # noqa: B027 - optional: most stores borrow a connection
        """Release what the key store holds. Idempotent."""

    # -- the API ----------------------------------------------------------------------

    def _fresh(self, stamp: float) -> bool:
        return self._clock() - stamp < self.cache_ttl

    async def key_for(self, subject: str) -> SubjectKey:
        """``subject``'s key, created on first use."""
        check_subject(subject)
        hit = self._by_subject.get(subject)
        if hit is not None and self._fresh(hit[1]):
            return hit[0]
        key = await self._insert_or_get(subject, new_subject_key())
        now = self._clock()
        self._by_subject[subject] = (key, now)
        self._by_id[key.key_id] = (key.key, now)
        return key

    async def keys(self, key_ids: Collection[str]) -> dict[str, bytes]:
        """The keys among ``key_ids`` that still exist (a forgotten subject's is absent)."""
        found: dict[str, bytes] = {}
        missing: list[str] = []
        for key_id in key_ids:
            hit = self._by_id.get(key_id)
            if hit is not None and self._fresh(hit[1]):
                found[key_id] = hit[0]
            else:
                missing.append(key_id)
        if missing:
            fetched = await self._fetch(missing)
            now = self._clock()
            for key_id, key in fetched.items():
                self._by_id[key_id] = (key, now)
            found.update(fetched)
        return found

    async def forget(self, subject: str) -> bool:
        """Delete ``subject``'s key: their personal fields become unreadable everywhere.

        Returns whether the subject had a key. A later ``key_for(subject)``
        creates a new key: what was encrypted before stays unreadable.
        """
        check_subject(subject)
        key_id = await self._delete(subject)
        cached = self._by_subject.pop(subject, None)
        if cached is not None:
            self._by_id.pop(cached[0].key_id, None)
        if key_id is not None:
            self._by_id.pop(key_id, None)
        return key_id is not None

    def clear_cache(self) -> None:
        """Drop every cached key: the next use reads the key table again."""
        self._by_subject.clear()
        self._by_id.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class InMemoryKeyStore(KeyStore):
    """Keys in a dict: for tests and the in-memory event store (nothing is kept)."""

    def __init__(
        self, *, cache_ttl: float = DEFAULT_KEY_CACHE_TTL, clock: Callable[[], float] | None = None
    ) -> None:
        super().__init__(cache_ttl=cache_ttl, clock=clock)
        self.rows: dict[str, SubjectKey] = {}

    async def _insert_or_get(self, subject: str, candidate: SubjectKey) -> SubjectKey:
        return self.rows.setdefault(subject, candidate)

    async def _fetch(self, key_ids: list[str]) -> dict[str, bytes]:
        wanted = set(key_ids)
        return {k.key_id: k.key for k in self.rows.values() if k.key_id in wanted}

    async def _delete(self, subject: str) -> str | None:
        key = self.rows.pop(subject, None)
        return None if key is None else key.key_id


def key_store_for(store: EventStore, *, cache_ttl: float = DEFAULT_KEY_CACHE_TTL) -> KeyStore:
    """The key store that keeps keys beside ``store``'s events (not yet set up).

    In memory for :class:`~evsrc.memory.InMemoryEventStore`, a table in the
    same file for ``SqliteEventStore``, in the same schema for
    ``PostgresEventStore``. Wrappers (``DelegatingStore``) are looked through.
    Raises ``ConfigurationError`` for any other store.
    """
    while isinstance(store, DelegatingStore):
        store = store.inner
    from evsrc.memory import InMemoryEventStore

    if isinstance(store, InMemoryEventStore):
        return InMemoryKeyStore(cache_ttl=cache_ttl)
    try:
        from evsrc.sqlite import SqliteEventStore
        from evsrc.sqlite.keys import SqliteKeyStore
    except ImportError:  # pragma: no cover - sqlite3 is part of CPython
        pass
    else:
        if isinstance(store, SqliteEventStore):
            return SqliteKeyStore(store.path, cache_ttl=cache_ttl)
    try:
        from evsrc.postgres import PostgresEventStore
        from evsrc.postgres.keys import PostgresKeyStore
    except ImportError:  # pragma: no cover - the postgres extra is missing
        pass
    else:
        if isinstance(store, PostgresEventStore):
            return PostgresKeyStore.beside(store, cache_ttl=cache_ttl)
    msg = f"no key store is known for {type(store).__name__}; pass a KeyStore explicitly"
    raise ConfigurationError(msg)
