"""Bearer tokens for the booking app: signed JWTs (HS256, via PyJWT), minted by the CLI.

``python -m examples.booking token ACTOR [--admin]`` prints a token signed with
the secret in ``$EVSRC_BOOKING_SECRET``; the server checks the signature, the
issuer and the expiry. The token's subject is the caller: the actor of
``/book`` and ``/cancel``. An ``admin`` token may also schedule capacity and
act for others. See ``docs/booking.md`` ("Tokens").
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Final

import jwt

from evsrc.errors import ConfigurationError, InvalidInputError
from evsrc.tenants import check_tenant
from examples.booking.domain import BookingError, check_actor

__all__ = [
    "ALGORITHM",
    "DEFAULT_TTL",
    "ISSUER",
    "MIN_SECRET_BYTES",
    "SECRET_ENV",
    "AuthError",
    "Caller",
    "SecretError",
    "check_secret",
    "mint_token",
    "read_token",
    "secret_from_env",
]

#: The environment variable holding the signing secret.
SECRET_ENV: Final = "EVSRC_BOOKING_SECRET"
#: The only signature algorithm minted and accepted.
ALGORITHM: Final = "HS256"
#: The ``iss`` claim of every token.
ISSUER: Final = "evsrc-booking"
#: Default token lifetime, in seconds (30 days).
DEFAULT_TTL: Final = 30 * 24 * 3600
#: Shortest secret accepted (RFC 7518 §3.2: an HS256 key of at least 256 bits).
MIN_SECRET_BYTES: Final = 32


class SecretError(BookingError, ConfigurationError):
    """The signing secret is missing or too short."""


class AuthError(BookingError):
    """A request's bearer token is missing, malformed, forged or expired."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the token's subject, and whether it is an admin."""

    actor: str
    admin: bool = False
    #: The tenant the token is for (a multi-tenant app serves only that tenant's store).
    tenant: str | None = None


def check_secret(secret: str | None) -> bytes:
    """The secret as bytes; ``SecretError`` if it is missing or shorter than 32 bytes."""
    if not secret:
        msg = f"no signing secret: set {SECRET_ENV} (at least {MIN_SECRET_BYTES} bytes)"
        raise SecretError(msg)
    key = secret.encode("utf-8", "surrogateescape")
    if len(key) < MIN_SECRET_BYTES:
        msg = f"{SECRET_ENV} is {len(key)} bytes; it must be at least {MIN_SECRET_BYTES}"
        raise SecretError(msg)
    return key


def secret_from_env() -> str | None:
    """``$EVSRC_BOOKING_SECRET``, or ``None`` when unset or empty."""
    return os.environ.get(SECRET_ENV) or None


def mint_token(
    secret: str,
    actor: str,
    *,
    admin: bool = False,
    ttl: int = DEFAULT_TTL,
    now: float | None = None,
    tenant: str | None = None,
) -> str:
    """A signed token naming ``actor`` (an admin's if ``admin``), valid for ``ttl`` seconds."""
    key = check_secret(secret)
    check_actor(actor)
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": actor,
        "admin": admin,
        "iss": ISSUER,
        "iat": issued,
        "exp": issued + ttl,
    }
    if tenant is not None:
        claims["tenant"] = check_tenant(tenant)
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read_token(secret: str, authorization: str | None) -> Caller:
    """The caller an ``Authorization: Bearer …`` header proves; ``AuthError`` otherwise."""
    if not authorization:
        msg = "missing bearer token (Authorization: Bearer …)"
        raise AuthError(msg)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        msg = "the Authorization header must be 'Bearer <token>'"
        raise AuthError(msg)
    try:
        claims = jwt.decode(
            token.strip(),
            check_secret(secret),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        msg = "the token has expired"
        raise AuthError(msg) from None
    except jwt.InvalidTokenError:
        msg = "invalid token"
        raise AuthError(msg) from None
    actor = claims.get("sub")
    admin = claims.get("admin", False)
    tenant = claims.get("tenant")
    if type(actor) is not str or type(admin) is not bool:
        msg = "invalid token"
        raise AuthError(msg)
    try:
        check_actor(actor)
        if tenant is not None:
            check_tenant(tenant)
    except (BookingError, InvalidInputError):
        msg = "invalid token"
        raise AuthError(msg) from None
    return Caller(actor, admin, tenant)
