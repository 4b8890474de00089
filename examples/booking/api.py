"""The booking HTTP API and its page, on Starlette.

========  ==================  ================================================
POST      ``/schedule``       admins: ``{"occurrence", "capacity"}`` → 201 (200 if already so)
POST      ``/book``           ``{"occurrence", "actor"?, "capacity"?, "waitlist"?}``
                              → 201 booked, 200 already / waitlisted, 409 full
POST      ``/hold``           ``{"occurrence", "actor"?, "capacity"?}`` → 201 held (until
                              ``expires_at``), 200 already, 409 full
POST      ``/confirm``        ``{"occurrence", "actor"?}`` → 200 confirmed, 404 no hold
POST      ``/cancel``         ``{"occurrence", "actor"?}`` → 200, 404 when not booked
GET       ``/roster``         ``?occurrence=…&capacity=…`` → roster, waitlist, seats left
GET       ``/occurrences``    every occurrence's seats left, and the caller's seat or place
GET       ``/events``         the same, as server-sent events, on every change
GET       ``/health``         liveness; ``/ready`` readiness; ``/metrics`` Prometheus text
GET       ``/openapi.json``   this API as OpenAPI 3.1; ``/`` the page
========  ==================  ================================================

The actor is the authenticated caller (``Authorization: Bearer <token>``, see
``examples.booking.auth``); only admins schedule, pass a capacity for an
unscheduled occurrence, or act for others. Every error is a JSON object
``{"error": code, "message": …, "field"?: …}`` that names no internal stream,
driver or database. See ``docs/booking.md`` for the whole table.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from evsrc.errors import (
    ConfigurationError,
    EvsrcError,
    InvalidInputError,
    RetriesExhaustedError,
    StoreClosedError,
    StoreUnavailableError,
)
from evsrc.memory import InMemoryEventStore
from evsrc.projection import ProjectionRunner
from evsrc.reactions import LogSink, Sink
from evsrc.shredding import ShreddingStore
from evsrc.tenants import TenantStores
from examples.booking.apidoc import operations
from examples.booking.auth import AuthError, Caller, check_secret, read_token
from examples.booking.board import SeatsBoard
from examples.booking.bodies import ApiError, error_response, read_model
from examples.booking.domain import (
    AlreadyScheduledError,
    BookingStatus,
    CancelStatus,
    ConfirmStatus,
    InvalidBookingError,
    NotScheduledError,
    Reason,
    check_capacity,
    check_occurrence,
)
from examples.booking.logs import LOGGER, RequestIdMiddleware, request_id
from examples.booking.metrics import CONTENT_TYPE, MeteredStore, Metrics
from examples.booking.openapi import openapi_document
from examples.booking.privacy import forget_actor, shredded
from examples.booking.reactions import BookingReactions
from examples.booking.schemas import (
    BookBody,
    CancelBody,
    ConfirmBody,
    ForgetBody,
    HoldBody,
    ScheduleBody,
)
from examples.booking.service import DEFAULT_HOLD_TTL, BookingService
from examples.booking.stores import open_booking_store
from examples.booking.tenancy import CURRENT_TENANT, TenantMiddleware

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from datetime import timedelta

    from starlette.requests import Request

    from evsrc.store import EventStore

__all__ = ["READY_MAX_LAG_SECONDS", "STATIC_DIR", "create_app"]

#: ``/ready`` answers 503 while the seats board is further behind than this.
READY_MAX_LAG_SECONDS: Final = 5.0
#: The page's files (package data).
STATIC_DIR: Final = Path(__file__).parent / "static"
#: Seconds between keep-alive comments on an idle ``/events`` stream.
SSE_KEEPALIVE: Final = 15.0
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class _Running:
    """What the app holds while it runs (between lifespan start and end)."""

    def __init__(
        self, store: EventStore, metrics: Metrics, hold_ttl: timedelta, notify: Sink | None
    ) -> None:
        self.store = store
        self.service = BookingService(MeteredStore(store, metrics), hold_ttl=hold_ttl)
        # Hold expiries and waitlist notices (process managers, deadlines, the outbox).
        self.reactions = BookingReactions(
            BookingService(store, hold_ttl=hold_ttl),
            sinks={"notify": notify if notify is not None else LogSink()},
        )
        self.board = SeatsBoard()
        self.runner = ProjectionRunner(store, self.board)
        self.closing = anyio.Event()


def _forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


async def _guard(request: Request, endpoint: Callable[[], Awaitable[Response]]) -> Response:
    """Map every typed error to its JSON response, in one place; nothing internal leaks."""
    try:
        return await endpoint()
    except ApiError as exc:
        return exc.response()
    except AuthError as exc:
        return error_response(
            401, "unauthorized", exc.message, headers={"WWW-Authenticate": "Bearer"}
        )
    except InvalidBookingError as exc:
        return error_response(422, "invalid_input", exc.message, field=exc.argument)
    except InvalidInputError as exc:
        # From the store: its message may name the stream; say only what kind of input it was.
        LOGGER.info("store refused input", extra={"error": type(exc).__name__, "detail": str(exc)})
        return error_response(422, "invalid_input", "the store refused this input as invalid")
    except NotScheduledError as exc:
        return error_response(404, "not_scheduled", exc.message)
    except AlreadyScheduledError as exc:
        return error_response(409, "already_scheduled", exc.message)
    except RetriesExhaustedError:
        return error_response(
            503,
            "busy",
            "the occurrence is changing too fast; retry shortly",
            headers={"Retry-After": "1"},
        )
    except (StoreUnavailableError, StoreClosedError, ConfigurationError) as exc:
        LOGGER.warning("store unavailable", extra={"error": type(exc).__name__, "detail": str(exc)})
        return error_response(
            503,
            "store_unavailable",
            "the store is unavailable; retry later",
            headers={"Retry-After": "1"},
        )
    except EvsrcError:
        LOGGER.exception("unexpected store error")
        return _internal_error()


def _internal_error() -> JSONResponse:
    return error_response(
        500, "internal", f"internal error; the server log has the details (request {request_id()})"
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    messages = {
        404: "no such endpoint; see /openapi.json",
        405: f"{request.method} is not allowed here",
    }
    message = messages.get(exc.status_code, "the request was refused")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, message, headers=headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    LOGGER.error("unhandled error", exc_info=exc)
    return _internal_error()


def create_app(
    store: EventStore | None = None,
    *,
    store_url: str | None = None,
    secret: str | None = None,
    insecure_no_auth: bool = False,
    hold_ttl: timedelta = DEFAULT_HOLD_TTL,
    notify: Sink | None = None,
    tenant_url: str | None = None,
) -> Starlette:
    """The booking API (and its page) as an ASGI app.

    Pass a ``store`` (it stays yours to close) or a ``store_url`` (opened on
    startup with ``evsrc.open_store``, closed on shutdown); neither means a
    fresh ``memory:`` store. A store the app opens stores actors encrypted
    (:func:`examples.booking.privacy.shredded`); a store you pass is used as
    is, so pass ``ShreddingStore`` (say, from ``shredded(store)``) for
    ``POST /admin/forget`` to work (else it answers 501). ``secret`` signs and checks bearer tokens
    (at least 32 bytes); without one, ``insecure_no_auth=True`` must say so,
    and then every caller is an admin who names the actor in the body.
    ``hold_ttl`` is how long a hold lasts; ``notify`` is the outbox sink that
    tells people the waitlist promoted (default: a log line).
    Everything runs between the app's lifespan start and end.

    ``tenant_url`` (a :class:`evsrc.tenants.TenantStores` URL, instead of a
    store) serves several tenants: each token names its ``tenant`` and each
    request sees only that tenant's store (:mod:`examples.booking.tenancy`).
    """
    if store is not None and store_url is not None:
        msg = "pass a store or a store_url, not both"
        raise ConfigurationError(msg)
    if tenant_url is not None and (store is not None or store_url is not None or secret is None):
        msg = "tenant_url replaces store and store_url, and needs a secret (tokens name tenants)"
        raise ConfigurationError(msg)
    if secret is None and not insecure_no_auth:
        msg = "no token secret: pass secret=… (at least 32 bytes) or insecure_no_auth=True"
        raise ConfigurationError(msg)
    if secret is not None:
        check_secret(secret)
    metrics = Metrics()
    holder: dict[str, _Running] = {}
    document = openapi_document(
        operations(),
        title="evsrc booking",
        version="1",
        description="Capacity-safe booking on evsrc. "
        "Tokens: python -m examples.booking token ACTOR [--admin]",
    )

    def running() -> _Running:
        if tenant_url is None:
            run = holder.get("run")
        else:
            tenant = CURRENT_TENANT.get()
            run = holder.get(f"run:{tenant}")
            if tenant is None and "run" in holder:
                msg = "this server serves tenants: the token must name one"
                raise _forbidden(msg)
        if run is None:
            raise ApiError(503, "starting", "the service is starting or stopping; retry shortly")
        return run

    def caller_of(request: Request) -> Caller:
        if secret is None:
            return Caller("anonymous", admin=True)
        return read_token(secret, request.headers.get("authorization"))

    def actor_for(caller: Caller, given: str | None) -> str:
        if given is None:
            if secret is None:
                msg = "actor: required when the server runs without authentication"
                raise ApiError(422, "invalid_input", msg, field="actor")
            return caller.actor
        if given != caller.actor and not caller.admin:
            msg = "you may only book or cancel for yourself"
            raise _forbidden(msg)
        return given

    tenant_lock = anyio.Lock()
    tenancy: dict[str, Any] = {}

    async def resolve_tenant(authorization: str | None) -> str | None:
        """The tenant a token names, its store and board started on first use."""
        assert secret is not None
        try:
            tenant = read_token(secret, authorization).tenant
        except AuthError:
            return None
        if tenant is None or f"run:{tenant}" in holder or "run" not in holder:
            return tenant
        async with tenant_lock:
            if f"run:{tenant}" not in holder:
                stack, tenants, tg = tenancy["open"]
                leased = await stack.enter_async_context(tenants.lease(tenant))
                own = await stack.enter_async_context(shredded(leased))
                run = _Running(own, metrics, hold_ttl, notify)
                tg.start_soon(_follow, run)
                tg.start_soon(_react, run)
                holder[f"run:{tenant}"] = run
        return tenant

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if tenant_url is not None:
            async with contextlib.AsyncExitStack() as stack:
                tenants = await stack.enter_async_context(TenantStores(tenant_url))
                async with anyio.create_task_group() as tg:
                    tenancy["open"] = (stack, tenants, tg)
                    # serves no one: every request names its tenant
                    holder["run"] = _Running(InMemoryEventStore(), metrics, hold_ttl, notify)
                    try:
                        yield
                    finally:
                        runs = [holder.pop(k) for k in list(holder) if k.startswith("run")]
                        del tenancy["open"]
                        for run in runs:
                            run.closing.set()
                            run.board.close()
                        tg.cancel_scope.cancel()
            return
        async with contextlib.AsyncExitStack() as stack:
            own = store
            if own is None:
                own = await stack.enter_async_context(open_booking_store(store_url or "memory:"))
            run = _Running(own, metrics, hold_ttl, notify)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_follow, run)
                tg.start_soon(_react, run)
                holder["run"] = run
                try:
                    yield
                finally:
                    del holder["run"]
                    run.closing.set()
                    run.board.close()
                    tg.cancel_scope.cancel()

    async def schedule(request: Request) -> Response:
        async def go() -> Response:
            caller = caller_of(request)
            body = await read_model(request, ScheduleBody)
            if not caller.admin:
                msg = "only admins may schedule an occurrence's capacity"
                raise _forbidden(msg)
            result = await running().service.schedule(body.occurrence, body.capacity)
            metrics.commands.labels("schedule", "created" if result.created else "same").inc()
            return JSONResponse(result.to_dict(), status_code=201 if result.created else 200)

        return await _guard(request, go)

    async def book(request: Request) -> Response:
        async def go() -> Response:
            caller = caller_of(request)
            body = await read_model(request, BookBody)
            actor = actor_for(caller, body.actor)
            svc = running().service
            if body.capacity is not None and not caller.admin:
                check_occurrence(body.occurrence)
                if await svc.capacity(body.occurrence) is None:
                    msg = "only admins may set the capacity of an unscheduled occurrence"
                    raise _forbidden(msg)
            result = await svc.book(body.occurrence, body.capacity, actor, waitlist=body.waitlist)
            metrics.commands.labels("book", result.status.value).inc()
            metrics.retries.inc(result.attempts - 1)
            code = {BookingStatus.BOOKED: 201, BookingStatus.FULL: 409}.get(result.status, 200)
            return JSONResponse(result.to_dict(), status_code=code)

        return await _guard(request, go)

    async def hold(request: Request) -> Response:
        async def go() -> Response:
            caller = caller_of(request)
            body = await read_model(request, HoldBody)
            actor = actor_for(caller, body.actor)
            svc = running().service
            if body.capacity is not None and not caller.admin:
                check_occurrence(body.occurrence)
                if await svc.capacity(body.occurrence) is None:
                    msg = "only admins may set the capacity of an unscheduled occurrence"
                    raise _forbidden(msg)
            result = await svc.hold(body.occurrence, actor, body.capacity)
            metrics.commands.labels("hold", result.status.value).inc()
            code = {BookingStatus.HELD: 201, BookingStatus.FULL: 409}.get(result.status, 200)
            return JSONResponse(result.to_dict(), status_code=code)

        return await _guard(request, go)

    async def confirm(request: Request) -> Response:
        async def go() -> Response:
            caller = caller_of(request)
            body = await read_model(request, ConfirmBody)
            actor = actor_for(caller, body.actor)
            result = await running().service.confirm(body.occurrence, actor)
            metrics.commands.labels("confirm", result.status.value).inc()
            code = 404 if result.status is ConfirmStatus.ABSENT else 200
            return JSONResponse(result.to_dict(), status_code=code)

        return await _guard(request, go)

    async def cancel(request: Request) -> Response:
        async def go() -> Response:
            caller = caller_of(request)
            body = await read_model(request, CancelBody)
            actor = actor_for(caller, body.actor)
            result = await running().service.cancel(body.occurrence, actor)
            metrics.commands.labels("cancel", result.status.value).inc()
            code = 404 if result.status is CancelStatus.ABSENT else 200
            return JSONResponse(result.to_dict(), status_code=code)

        return await _guard(request, go)

    async def forget(request: Request) -> Response:
        async def go() -> Response:
            caller = caller_of(request)
            body = await read_model(request, ForgetBody)
            if not caller.admin:
                msg = "only admins may forget a person"
                raise _forbidden(msg)
            run = running()
            if not isinstance(run.store, ShreddingStore):
                msg = "this server's store does not encrypt actors, so it cannot forget one"
                raise ApiError(501, "not_implemented", msg)
            result = await forget_actor(run.service, run.store, body.actor)
            metrics.commands.labels("forget", "forgotten" if result.forgotten else "absent").inc()
            return JSONResponse(result.to_dict())

        return await _guard(request, go)

    async def roster(request: Request) -> Response:
        async def go() -> Response:
            caller_of(request)
            occurrence = request.query_params.get("occurrence")
            if occurrence is None:
                msg = "occurrence: query parameter required"
                raise ApiError(422, "invalid_input", msg, field="occurrence")
            raw_capacity = request.query_params.get("capacity")
            given: int | None = None
            if raw_capacity is not None:
                if not (raw_capacity.isascii() and raw_capacity.isdigit()) or len(raw_capacity) > 7:
                    msg = "capacity: must be a whole number from 1 to 1000000"
                    raise ApiError(422, "invalid_input", msg, field="capacity")
                given = check_capacity(int(raw_capacity))
            svc = running().service
            occ = await svc.state(occurrence)
            cap = occ.effective_capacity(given)
            if not isinstance(cap, int):
                if occ.seq == 0:
                    msg = f"no occurrence {occurrence!r}"
                    raise ApiError(404, "unknown_occurrence", msg)
                if cap.reason == Reason.CAPACITY_MISMATCH:
                    await svc.seats_left(occurrence, given)  # raises CapacityMismatchError
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

        return await _guard(request, go)

    def board_view(caller: Caller, board: SeatsBoard) -> dict[str, Any]:
        return {
            "you": {"actor": caller.actor, "admin": caller.admin},
            "occurrences": board.summary(caller.actor),
        }

    async def occurrences(request: Request) -> Response:
        async def go() -> Response:
            return JSONResponse(board_view(caller_of(request), running().board))

        return await _guard(request, go)

    async def events(request: Request) -> Response:
        async def go() -> Response:
            caller = caller_of(request)
            run = running()

            async def feed() -> AsyncIterator[str]:
                version = -1
                while not run.closing.is_set():
                    with anyio.move_on_after(SSE_KEEPALIVE) as scope:
                        version = await run.board.changed(version)
                    if run.closing.is_set():
                        return
                    if scope.cancelled_caught:
                        yield ": keep-alive\n\n"
                        continue
                    await anyio.sleep(0.02)  # let a burst of commits land in one message
                    version = run.board.version
                    yield "data: " + json.dumps(board_view(caller, run.board)) + "\n\n"

            return StreamingResponse(
                feed(),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            )

        return await _guard(request, go)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        run = holder.get("run")
        if run is None:
            return JSONResponse(
                {"status": "not_ready", "checks": {"app": "starting or stopping"}}, status_code=503
            )
        checks: dict[str, str] = {}
        ok = True
        try:
            with anyio.fail_after(2):
                await run.store.last_seq("booking-ready-probe")
            checks["store"] = "ok"
        except (EvsrcError, TimeoutError):
            checks["store"] = "unreachable"
            ok = False
        if run.runner.failed is not None:
            checks["seats_board"] = "failed"
            ok = False
        elif checks["store"] == "ok":
            try:
                with anyio.fail_after(2):
                    lag = await run.runner.lag(limit=10_000)
            except (EvsrcError, TimeoutError):
                checks["seats_board"] = "unknown"
                ok = False
            else:
                behind = lag.seconds > READY_MAX_LAG_SECONDS
                checks["seats_board"] = (
                    f"behind by {lag.events} events ({lag.seconds:.1f} s)"
                    if behind
                    else "caught up"
                )
                ok = ok and not behind
        body = {"status": "ready" if ok else "not_ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        run = holder.get("run")
        if run is not None:
            with contextlib.suppress(EvsrcError, TimeoutError), anyio.fail_after(2):
                lag = await run.runner.lag(limit=10_000)
                metrics.projection_lag.set(lag.events)
                metrics.projection_lag_seconds.set(lag.seconds if math.isfinite(lag.seconds) else 0)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/schedule", schedule, methods=["POST"]),
            Route("/book", book, methods=["POST"]),
            Route("/hold", hold, methods=["POST"]),
            Route("/confirm", confirm, methods=["POST"]),
            Route("/cancel", cancel, methods=["POST"]),
            Route("/admin/forget", forget, methods=["POST"]),
            Route("/roster", roster, methods=["GET"]),
            Route("/occurrences", occurrences, methods=["GET"]),
            Route("/events", events, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[Middleware(RequestIdMiddleware, metrics=metrics)]
        + ([] if tenant_url is None else [Middleware(TenantMiddleware, resolve=resolve_tenant)]),
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )


async def _react(run: _Running) -> None:
    """Run the booking's reactions; after an error, start them again (they resume)."""
    delay = 0.1
    while not run.closing.is_set():
        try:
            async with run.reactions.running():
                await run.closing.wait()
        except Exception as exc:
            LOGGER.warning("reactions interrupted; resuming", extra={"error": type(exc).__name__})
        await anyio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def _follow(run: _Running) -> None:
    """Run the seats board; after a fault, start again from its checkpoint (it never gives up)."""
    delay = 0.1
    while not run.closing.is_set():
        try:
            await run.runner.run()
        except Exception as exc:
            if run.runner.failed is not None:
                LOGGER.error("seats board stopped", exc_info=exc)
                return
            LOGGER.warning("seats board interrupted; resuming", extra={"error": type(exc).__name__})
        await anyio.sleep(delay)
        delay = min(delay * 2, 5.0)
