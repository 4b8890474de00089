"""The booking API's operations as documented in ``/openapi.json``."""

from __future__ import annotations

from examples.booking.openapi import Operation, Param, Reply
from examples.booking.schemas import (
    BookBody,
    BookingOut,
    CancelBody,
    CancelOut,
    ConfirmBody,
    ConfirmOut,
    ErrorOut,
    ForgetBody,
    ForgetOut,
    HealthOut,
    HoldBody,
    HoldOut,
    OccurrencesOut,
    ReadyOut,
    RosterOut,
    ScheduleBody,
    ScheduleOut,
)

__all__ = ["operations"]


def operations() -> list[Operation]:
    """Every route of ``create_app`` as ``/openapi.json`` documents it (a test checks it)."""
    err = Reply("error", ErrorOut)
    auth_errors = {401: Reply("missing, forged or expired token", ErrorOut)}
    body_errors = {
        400: Reply("malformed body (not UTF-8, not JSON, too deep)", ErrorOut),
        413: Reply("body over 16 KiB", ErrorOut),
        415: Reply("body not application/json", ErrorOut),
        422: Reply("invalid field (named in 'field')", ErrorOut),
        503: Reply("store unavailable or too busy; retry", ErrorOut),
    }
    return [
        Operation(
            "POST",
            "/schedule",
            "Record an occurrence's capacity (admins only)",
            {
                201: Reply("scheduled", ScheduleOut),
                200: Reply("already scheduled with this capacity", ScheduleOut),
                403: Reply("not an admin", ErrorOut),
                409: Reply("already scheduled with another capacity", ErrorOut),
                **auth_errors,
                **body_errors,
            },
            body=ScheduleBody,
            auth=True,
        ),
        Operation(
            "POST",
            "/book",
            "Book a seat for the caller (admins: for anyone)",
            {
                201: Reply("booked", BookingOut),
                200: Reply("already booked, or waitlisted", BookingOut),
                409: Reply("full", BookingOut),
                403: Reply("acting for someone else, or setting capacity, without admin", ErrorOut),
                404: Reply("not scheduled and no capacity given", ErrorOut),
                **auth_errors,
                **body_errors,
            },
            body=BookBody,
            auth=True,
        ),
        Operation(
            "POST",
            "/hold",
            "Hold a seat for the caller until confirmed (admins: for anyone); it expires",
            {
                201: Reply("held (see expires_at)", HoldOut),
                200: Reply("already booked or held, or waitlisted", HoldOut),
                409: Reply("full", HoldOut),
                403: Reply("acting for someone else, or setting capacity, without admin", ErrorOut),
                404: Reply("not scheduled and no capacity given", ErrorOut),
                **auth_errors,
                **body_errors,
            },
            body=HoldBody,
            auth=True,
        ),
        Operation(
            "POST",
            "/confirm",
            "Turn the caller's hold into a booking (admins: anyone's)",
            {
                200: Reply("confirmed, or already booked", ConfirmOut),
                404: Reply("no hold to confirm (it expired, or never was)", ConfirmOut),
                403: Reply("confirming for someone else without admin", ErrorOut),
                **auth_errors,
                **body_errors,
            },
            body=ConfirmBody,
            auth=True,
        ),
        Operation(
            "POST",
            "/cancel",
            "Cancel the caller's seat or waitlist place (admins: anyone's)",
            {
                200: Reply("cancelled (perhaps promoting the waitlist's head)", CancelOut),
                404: Reply("nothing to cancel", CancelOut),
                403: Reply("cancelling for someone else without admin", ErrorOut),
                **auth_errors,
                **body_errors,
            },
            body=CancelBody,
            auth=True,
        ),
        Operation(
            "POST",
            "/admin/forget",
            "Forget a person (admins only): free their seats, holds and waitlist places, "
            "then delete their key, so their name reads as [forgotten:…] in every event",
            {
                200: Reply("freed and forgotten (forgotten=false: nothing was known)", ForgetOut),
                403: Reply("not an admin", ErrorOut),
                501: Reply("the server's store does not encrypt actors", ErrorOut),
                **auth_errors,
                **body_errors,
            },
            body=ForgetBody,
            auth=True,
        ),
        Operation(
            "GET",
            "/roster",
            "One occurrence's roster, waitlist and seats left",
            {
                200: Reply("the roster", RosterOut),
                404: Reply("unknown occurrence", ErrorOut),
                422: err,
                **auth_errors,
            },
            params=(
                Param("occurrence", "the occurrence", required=True),
                Param("capacity", "for an unscheduled occurrence", type="integer"),
            ),
            auth=True,
        ),
        Operation(
            "GET",
            "/occurrences",
            "Every occurrence's seats left, with the caller's seat or waitlist place",
            {200: Reply("the board", OccurrencesOut), **auth_errors},
            auth=True,
        ),
        Operation(
            "GET",
            "/events",
            "The board as server-sent events: one 'data:' line (OccurrencesOut) per change",
            {200: Reply("an event stream", media_type="text/event-stream"), **auth_errors},
            auth=True,
        ),
        Operation("GET", "/health", "Liveness", {200: Reply("alive", HealthOut)}),
        Operation(
            "GET",
            "/ready",
            "Readiness: the store answers and the seats board is caught up",
            {200: Reply("ready", ReadyOut), 503: Reply("not ready", ReadyOut)},
        ),
        Operation(
            "GET",
            "/metrics",
            "Prometheus metrics",
            {200: Reply("text exposition format", media_type="text/plain")},
        ),
        Operation(
            "GET",
            "/openapi.json",
            "This document",
            {200: Reply("OpenAPI 3.1", media_type="application/json")},
        ),
        Operation("GET", "/", "The page", {200: Reply("HTML", media_type="text/html")}),
    ]
