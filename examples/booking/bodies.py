"""Reading request bodies that may be hostile, and the JSON error shape.

A write's body must be ``Content-Type: application/json`` (else 415), at most
:data:`MAX_BODY_BYTES` (else 413, checked while reading, not after), valid
UTF-8, nested at most :data:`MAX_DEPTH` deep, a JSON object with no lone
surrogates and no ``NaN``/``Infinity`` (else 400 or 422) — all before the
service sees it, so nothing is written for a refused request.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Final, TypeVar

import pydantic
from pydantic import BaseModel
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["MAX_BODY_BYTES", "MAX_DEPTH", "ApiError", "error_response", "read_model"]

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES: Final = 16 * 1024
#: Deepest JSON nesting accepted (the bodies are flat objects; this leaves room).
MAX_DEPTH: Final = 16

_M = TypeVar("_M", bound=BaseModel)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class ApiError(Exception):
    """An HTTP error answered as ``{"error": code, "message": …, "field"?: …}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
        self.extra = extra

    def response(self) -> JSONResponse:
        """This error as a JSON response."""
        return error_response(
            self.status,
            self.code,
            self.message,
            field=self.field,
            headers=self.headers,
            **self.extra,
        )


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A JSON error response: ``{"error": code, "message": message, "field"?: field, …}``."""
    body: dict[str, Any] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def _check_content_type(request: Request) -> None:
    raw = request.headers.get("content-type")
    if raw is None:
        msg = "send the body as JSON with Content-Type: application/json"
        raise ApiError(415, "unsupported_media_type", msg)
    mime, _, params = raw.partition(";")
    if mime.strip().lower() != "application/json":
        msg = "the body must be Content-Type: application/json"
        raise ApiError(415, "unsupported_media_type", msg)
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            msg = "a JSON body must be UTF-8"
            raise ApiError(415, "unsupported_media_type", msg)


async def _read_limited(request: Request) -> bytes:
    too_large = ApiError(
        413, "too_large", f"the request body is over the limit of {MAX_BODY_BYTES} bytes"
    )
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "bad_request", "malformed Content-Length header")
        if int(length) > MAX_BODY_BYTES:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _too_deep(text: str) -> bool:
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub('""', text)):
        if m.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _refuse_constant(name: str) -> Any:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def _bad_text(value: object, path: str) -> str | None:
    """The path of the first string (key or value) that is not valid Unicode text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            found = _bad_text(k, where) or _bad_text(v, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _bad_text(v, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


async def read_json(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object, or an :class:`ApiError` saying what is wrong."""
    _check_content_type(request)
    raw = await _read_limited(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_encoding", "the request body is not valid UTF-8") from None
    if _too_deep(text):
        msg = f"the JSON body is nested deeper than {MAX_DEPTH} levels"
        raise ApiError(400, "too_deep", msg)
    try:
        payload = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_json", "the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_json", "the request body must be a JSON object")
    where = _bad_text(payload, "")
    if where is not None:
        # The path may itself hold the surrogate (a key): answer with it made printable.
        where = where.encode("utf-8", "replace").decode("utf-8")
        field = where.split(".", 1)[0] if where != "body" else None
        msg = f"{where}: a string holds a lone surrogate (not valid Unicode text)"
        raise ApiError(422, "invalid_input", msg, field=field)
    return payload


async def read_model(request: Request, model: type[_M]) -> _M:
    """The request's JSON body validated as ``model`` (422 naming the field when it is not)."""
    payload = await read_json(request)
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        first = errors[0]
        message = f"{first['field']}: {first['message']}"
        raise ApiError(422, "invalid_input", message, field=first["field"], errors=errors) from None
