"""Tenants: one isolated event store per tenant, opened on demand and cached.

``TenantStores(url)`` hands out the store of a tenant: ``await
tenants.store("acme")``, or ``async with tenants.lease("acme") as store:``
to keep it open while in use. Isolation comes from the backend, never from a
filter, so appends, reads, subscriptions, projections (their checkpoints live
beside the events) and the admin command cannot cross tenants:

- ``postgresql://…`` — a schema per tenant (``<schema_prefix><tenant>``) in
  one database, each with the full evsrc schema; one small pool per open tenant;
- ``sqlite:///…{tenant}….db`` — a file per tenant (the URL must hold
  ``{tenant}``);
- ``memory:`` — a store per tenant (never evicted: it holds the data).

At most ``max_open`` PostgreSQL/SQLite stores stay open; the least recently
used one that is not leased is closed when another must open. Tenant names
are 1–40 characters of ``a-z``, ``0-9`` and ``_``, starting with a letter: safe
as a schema name and a file name. ``docs/operations.md`` ("Tenants") says why
these mechanisms and what 1,000 tenants cost.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import anyio

from evsrc.errors import ConfigurationError, InvalidInputError, StoreClosedError
from evsrc.urls import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import TracebackType
    from typing import Self

    from evsrc.store import EventStore

__all__ = ["TENANT_PATTERN", "TenantStores", "check_tenant"]

#: What a tenant name may be.
TENANT_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]{0,39}")


def check_tenant(tenant: object) -> str:
    """Return ``tenant`` if it is a valid tenant name, else raise ``InvalidInputError``."""
    if type(tenant) is not str or TENANT_PATTERN.fullmatch(tenant) is None:
        msg = (
            "a tenant name is 1-40 characters of a-z, 0-9 and _, starting with a letter; "
            f"got {tenant!r}"
        )
        raise InvalidInputError(msg, argument="tenant", value=tenant)
    return tenant


class TenantStores:
    """The stores of many tenants on one backend, opened on demand, at most ``max_open`` at once.

    ``url``: ``memory:``, ``sqlite:///path/{tenant}.db`` or ``postgresql://…``
    (then ``schema_prefix`` names the schemas and ``pool_size`` bounds each
    tenant's pool). ``options`` go to each store's ``connect``.
    """

    def __init__(
        self,
        url: str,
        *,
        max_open: int = 64,
        schema_prefix: str = "tenant_",
        pool_size: int = 2,
        **options: Any,
    ) -> None:
        if type(url) is not str:
            msg = f"url must be a str, got {type(url).__name__}"
            raise ConfigurationError(msg)
        scheme = url.partition(":")[0].lower()
        if scheme not in ("memory", "sqlite", "postgresql", "postgres"):
            msg = f"TenantStores takes memory:, sqlite:// or postgresql:// URLs, got {scheme!r}"
            raise ConfigurationError(msg)
        if scheme == "sqlite" and "{tenant}" not in url:
            msg = "a SQLite tenant URL names a file per tenant: put {tenant} in it"
            raise ConfigurationError(msg)
        if isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 1:
            msg = f"max_open must be an int >= 1, got {max_open!r}"
            raise InvalidInputError(msg, argument="max_open", value=max_open)
        if re.fullmatch(r"[a-z_][a-z0-9_]{0,20}", schema_prefix) is None:
            msg = f"schema_prefix must be a short lower-case identifier, got {schema_prefix!r}"
            raise InvalidInputError(msg, argument="schema_prefix", value=schema_prefix)
        self.url = url
        self.kind = "postgres" if scheme.startswith("postgres") else scheme
        self.max_open = max_open
        self.schema_prefix = schema_prefix
        self.pool_size = pool_size
        self.options = options
        self._open: OrderedDict[str, EventStore] = OrderedDict()
        self._leases: dict[str, int] = {}
        self._lock = anyio.Lock()
        self._closed = False
        #: How many stores were opened (and closed again by eviction) so far.
        self.opened = 0
        self.evicted = 0

    def location(self, tenant: str) -> str:
        """Where ``tenant``'s events live: its file, its schema, or ``memory``."""
        check_tenant(tenant)
        if self.kind == "sqlite":
            return self.url.replace("{tenant}", tenant)
        if self.kind == "postgres":
            return self.schema_prefix + tenant
        return "memory"

    async def store(self, tenant: str) -> EventStore:
        """The store of ``tenant``, opened (and set up) if it is not open.

        Hold it only briefly on a bounded backend (it may be evicted and closed
        when ``max_open`` others are used); :meth:`lease` keeps it open.
        """
        check_tenant(tenant)
        if self._closed:
            raise StoreClosedError
        found = self._open.get(tenant)
        if found is not None:
            self._open.move_to_end(tenant)
            return found
        async with self._lock:
            found = self._open.get(tenant)
            if found is None:
                found = await self._connect(tenant)
                self._open[tenant] = found
                self.opened += 1
                await self._evict()
            self._open.move_to_end(tenant)
            return found

    @asynccontextmanager
    async def lease(self, tenant: str) -> AsyncIterator[EventStore]:
        """``async with tenants.lease("acme") as store:`` — never evicted while inside."""
        store = await self.store(tenant)
        self._leases[tenant] = self._leases.get(tenant, 0) + 1
        try:
            yield store
        finally:
            left = self._leases[tenant] - 1
            if left:
                self._leases[tenant] = left
            else:
                del self._leases[tenant]

    async def _connect(self, tenant: str) -> EventStore:
        if self.kind == "memory":
            return await open_store("memory:")
        if self.kind == "sqlite":
            return await open_store(self.location(tenant), **self.options)
        options = {"min_size": 0, "max_size": self.pool_size, **self.options}
        return await open_store(self.url, schema=self.location(tenant), **options)

    async def _evict(self) -> None:
        """Close the least recently used unleased stores beyond ``max_open`` (not memory)."""
        if self.kind == "memory":
            return
        for tenant in list(self._open):
            if len(self._open) <= self.max_open:
                return
            if tenant in self._leases:
                continue
            store = self._open.pop(tenant)
            self.evicted += 1
            await store.close()

    def open_tenants(self) -> list[str]:
        """The tenants whose store is open now, least recently used first."""
        return list(self._open)

    async def close(self) -> None:
        """Close every open store."""
        self._closed = True
        stores, self._open = list(self._open.values()), OrderedDict()
        for store in stores:
            await store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
