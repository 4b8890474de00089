"""``python -m examples.booking serve``: the HTTP API and page on uvicorn, JSON logs on stderr."""

from __future__ import annotations

import sys

import anyio

from examples.booking.auth import SECRET_ENV, check_secret, secret_from_env
from examples.booking.logs import LOGGER, configure_json_logging
from examples.booking.stores import open_booking_store

__all__ = ["INSECURE_WARNING", "serve"]

INSECURE_WARNING = (
    "WARNING: serving WITHOUT authentication (--insecure-no-auth): every caller is an admin "
    "and may book, cancel and schedule for anyone. Set {env} and drop the flag for real use."
)


def serve(
    store_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    insecure_no_auth: bool = False,
    log_level: str = "info",
) -> int:
    """Run the app until interrupted; returns the exit status.

    Refuses to start (``SecretError``) without ``$EVSRC_BOOKING_SECRET``
    unless ``insecure_no_auth``, which prints a warning instead.
    """
    import uvicorn

    from examples.booking.api import create_app

    secret = secret_from_env()
    if insecure_no_auth:
        sys.stderr.write(INSECURE_WARNING.format(env=SECRET_ENV) + "\n")
        secret = None
    else:
        check_secret(secret)
    anyio.run(_probe, store_url)  # a bad URL or an unreachable store: a clear error, now
    configure_json_logging(log_level)
    app = create_app(store_url=store_url, secret=secret, insecure_no_auth=insecure_no_auth)
    LOGGER.info("serving", extra={"host": host, "port": port, "auth": not insecure_no_auth})
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=3,
    )
    return 0


async def _probe(store_url: str) -> None:
    """Open the store once and close it: configuration errors surface before serving."""
    async with open_booking_store(store_url):
        pass
