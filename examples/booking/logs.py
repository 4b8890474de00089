"""Structured logs: one JSON object per line, each request's carrying its request id.

:class:`RequestIdMiddleware` takes ``X-Request-Id`` from the request (when it
is a sane token, else it makes one), returns it in the response, and logs
one ``request`` line per request with method, route, status and duration.
:func:`configure_json_logging` sends the ``examples.booking`` logger to
stderr through :class:`JsonFormatter` (``serve`` calls it).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from evsrc import correlated

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from examples.booking.metrics import Metrics

__all__ = [
    "LOGGER",
    "JsonFormatter",
    "RequestIdMiddleware",
    "configure_json_logging",
    "request_id",
]

#: The app's logger.
LOGGER = logging.getLogger("examples.booking")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "booking_request_id", default=None
)
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STANDARD = frozenset(vars(logging.makeLogRecord({})))
# Metric labels stay bounded: any other method a client sends counts as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id() -> str | None:
    """The id of the request being served, if any."""
    return _request_id.get()


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id()
        if rid is not None:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=True)


def configure_json_logging(level: str = "info") -> None:
    """Log ``examples.booking`` (and uvicorn's errors) as JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("examples.booking", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


class RequestIdMiddleware:
    """ASGI middleware: a request id in and out (``X-Request-Id``), one log line per request.

    The request id is also the evsrc correlation id of the events the request
    appends (``metadata["correlation_id"]``).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with its id set; log and count it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
        rid = given if given is not None and _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        token = _request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            with correlated(rid):  # the events this request appends carry it as correlation id
                await self.app(scope, receive, send_with_id)
        finally:
            route = _route_of(scope)
            if self.metrics is not None:
                method = scope["method"] if scope["method"] in _METHODS else "other"
                self.metrics.requests.labels(method, route, str(status)).inc()
            LOGGER.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"][:200],
                    "route": route,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
            _request_id.reset(token)


def _route_of(scope: Scope) -> str:
    """The matched route's path template; ``other`` for unmatched paths (bounded labels)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "other"
