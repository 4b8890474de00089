"""The booking HTTP JSON API, on Starlette.

========  ==============  ====================================================
POST      ``/schedule``   ``{"occurrence", "capacity"}`` → 201 (200 if already so)
POST      ``/book``       ``{"occurrence", "actor", "capacity"?, "waitlist"?}``
                          → 201 booked, 200 already / waitlisted, 409 full
POST      ``/cancel``     ``{"occurrence", "actor"}`` → 200, 404 when not booked
GET       ``/roster``     ``?occurrence=…&capacity=…`` → roster, waitlist, seats left
GET       ``/health``     → ``{"status": "ok"}``
========  ==============  ====================================================

Errors are JSON objects ``{"error": code, "message": …, "field"?: …}``: 422
for invalid input (naming the field), 404 for an unscheduled occurrence when
no capacity is given (or nothing to cancel), 409 for a full occurrence or a
conflicting schedule, 503 when the store is unreachable or the command kept
conflicting.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from evsrc.errors import InvalidInputError, RetriesExhaustedError, StoreUnavailableError
from evsrc.memory import InMemoryEventStore
from examples.booking.domain import (
    AlreadyScheduledError,
    BookingStatus,
    CancelStatus,
    NotScheduledError,
    check_capacity,
)
from examples.booking.service import BookingService

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from starlette.requests import Request

    from evsrc.store import EventStore

__all__ = ["create_app"]

_M = TypeVar("_M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ScheduleBody(_Body):
    """``POST /schedule``."""

    occurrence: str
    capacity: int


class BookBody(_Body):
    """``POST /book``."""

    occurrence: str
    actor: str
    capacity: int | None = None
    waitlist: bool = False


class CancelBody(_Body):
    """``POST /cancel``."""

    occurrence: str
    actor: str


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


class _HTTPError(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


async def _body(request: Request, model: type[_M]) -> _M:
    raw = await request.body()
    try:
        payload = json.loads(raw)
    except ValueError:
        raise _HTTPError(_error(400, "bad_json", "request body must be a JSON object")) from None
    if not isinstance(payload, dict):
        raise _HTTPError(_error(400, "bad_json", "request body must be a JSON object"))
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        first = errors[0]
        message = f"{first['field']}: {first['message']}"
        raise _HTTPError(
            _error(422, "invalid_input", message, field=first["field"], errors=errors)
        ) from None


def _guard(
    endpoint: Callable[[Request], Awaitable[JSONResponse]],
) -> Callable[[Request], Awaitable[JSONResponse]]:
    """Map the service's typed errors to JSON error responses, in one place."""

    async def wrapped(request: Request) -> JSONResponse:
        try:
            return await endpoint(request)
        except _HTTPError as exc:
            return exc.response
        except InvalidInputError as exc:
            return _error(422, "invalid_input", exc.message, field=exc.argument)
        except NotScheduledError as exc:
            return _error(404, "not_scheduled", exc.message)
        except AlreadyScheduledError as exc:
            return _error(409, "already_scheduled", exc.message)
        except RetriesExhaustedError as exc:
            return JSONResponse(
                {"error": "busy", "message": exc.message},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        except StoreUnavailableError as exc:
            return _error(503, "store_unavailable", exc.message)

    return wrapped


def create_app(
    store: EventStore | None = None,
    *,
    dsn: str | None = None,
) -> Starlette:
    """The booking API as an ASGI app.

    Pass a ``store`` (it stays yours to close), or a PostgreSQL ``dsn`` (the
    app connects on startup and closes on shutdown), or neither for a fresh
    in-memory store that lives as long as the app.
    """
    state: dict[str, BookingService] = {}
    if store is not None:
        state["service"] = BookingService(store)

    def service() -> BookingService:
        return state["service"]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if "service" in state:
            yield
            return
        if dsn is None:
            async with InMemoryEventStore() as own:
                state["service"] = BookingService(own)
                yield
        else:
            from evsrc.postgres import PostgresEventStore

            pg = await PostgresEventStore.connect(dsn)
            async with pg:
                await pg.setup()
                state["service"] = BookingService(pg)
                yield
        del state["service"]

    @_guard
    async def schedule(request: Request) -> JSONResponse:
        body = await _body(request, ScheduleBody)
        result = await service().schedule(body.occurrence, body.capacity)
        return JSONResponse(result.to_dict(), status_code=201 if result.created else 200)

    @_guard
    async def book(request: Request) -> JSONResponse:
        body = await _body(request, BookBody)
        result = await service().book(
            body.occurrence, body.capacity, actor=body.actor, waitlist=body.waitlist
        )
        code = {BookingStatus.BOOKED: 201, BookingStatus.FULL: 409}.get(result.status, 200)
        return JSONResponse(result.to_dict(), status_code=code)

    @_guard
    async def cancel(request: Request) -> JSONResponse:
        body = await _body(request, CancelBody)
        result = await service().cancel(body.occurrence, body.actor)
        code = 404 if result.status is CancelStatus.ABSENT else 200
        return JSONResponse(result.to_dict(), status_code=code)

    @_guard
    async def roster(request: Request) -> JSONResponse:
        occurrence = request.query_params.get("occurrence")
        if occurrence is None:
            return _error(
                422, "invalid_input", "occurrence: query parameter required", field="occurrence"
            )
        raw_capacity = request.query_params.get("capacity")
        given: int | None = None
        if raw_capacity is not None:
            try:
                given = int(raw_capacity)
            except ValueError:
                given = None
                msg = f"capacity must be an int, got {raw_capacity!r}"
                raise InvalidInputError(msg, argument="capacity", value=raw_capacity) from None
            check_capacity(given)
        occ = await service().state(occurrence)
        cap = occ.effective_capacity(given)
        if not isinstance(cap, int):
            if occ.seq == 0:
                return _error(404, "unknown_occurrence", f"no occurrence {occurrence!r}")
            if cap.reason == "capacity_mismatch":
                await service().seats_left(occurrence, given)  # raises CapacityMismatchError
            cap_out: int | None = None
        else:
            cap_out = cap
        return JSONResponse(
            {
                "occurrence": occurrence,
                "capacity": cap_out,
                "scheduled": occ.capacity is not None,
                "roster": list(occ.roster),
                "booked": len(occ.roster),
                "seats_left": None if cap_out is None else max(0, cap_out - len(occ.roster)),
                "waitlist": list(occ.waitlist),
                "last_seq": occ.seq,
            }
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/schedule", schedule, methods=["POST"]),
            Route("/book", book, methods=["POST"]),
            Route("/cancel", cancel, methods=["POST"]),
            Route("/roster", roster, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
