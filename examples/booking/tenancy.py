"""Several tenants (e.g. one per studio) served by one booking app process.

With ``create_app(tenant_url=…)`` each request runs against the store of the
tenant its bearer token names (the ``tenant`` claim, see
:func:`~examples.booking.auth.mint_token`): a :class:`evsrc.tenants.TenantStores`
opens one isolated store per tenant (a schema, a file, or a memory store) and
the app keeps one seats board per tenant, started the first time the tenant
calls. The request's tenant travels in a context variable set by
:class:`TenantMiddleware`, so the endpoints stay as they are.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["CURRENT_TENANT", "TenantMiddleware"]

#: The tenant of the request being served (``None``: the token names none).
CURRENT_TENANT: ContextVar[str | None] = ContextVar("booking_tenant", default=None)


class TenantMiddleware:
    """ASGI middleware: find the request's tenant and get its store ready before the endpoint.

    ``resolve(authorization)`` returns the tenant (``None`` when the header
    proves none; the endpoint then answers as usual) after making sure the
    tenant's store and board run.
    """

    def __init__(self, app: Any, *, resolve: Callable[[str | None], Awaitable[str | None]]) -> None:
        self.app = app
        self.resolve = resolve

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth = dict(scope.get("headers") or []).get(b"authorization")
        tenant = await self.resolve(None if auth is None else auth.decode("latin-1"))
        token = CURRENT_TENANT.set(tenant)
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT_TENANT.reset(token)
