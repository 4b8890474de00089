"""An OpenAPI 3.1 document from a table of operations and their pydantic models.

Starlette routes the requests; this module only describes them, with
pydantic's own JSON Schema output (``models_json_schema``) for every body.
Why not FastAPI: see ``docs/booking.md`` ("OpenAPI").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic.json_schema import models_json_schema

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["Operation", "Param", "Reply", "openapi_document"]


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter."""

    name: str
    description: str
    required: bool = False
    type: str = "string"


@dataclass(frozen=True, slots=True)
class Reply:
    """One response of an operation: a JSON model, or another media type."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path, as documented."""

    method: str
    path: str
    summary: str
    replies: dict[int, Reply]
    body: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    auth: bool = False
    tags: tuple[str, ...] = field(default=())


def openapi_document(
    operations: list[Operation], *, title: str, version: str, description: str
) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing ``operations``."""
    wanted: list[tuple[type[BaseModel], Any]] = []
    for op in operations:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        wanted += [(r.model, "serialization") for r in op.replies.values() if r.model is not None]
    unique = list(dict.fromkeys(wanted))
    refs, defs = models_json_schema(unique, ref_template="#/components/schemas/{model}")

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op)}
        if op.tags:
            entry["tags"] = list(op.tags)
        if op.params:
            entry["parameters"] = [
                {
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "description": p.description,
                    "schema": {"type": p.type},
                }
                for p in op.params
            ]
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        if op.auth:
            entry["security"] = [{"bearer": []}]
        responses: dict[str, Any] = {}
        for status, reply in sorted(op.replies.items()):
            out: dict[str, Any] = {"description": reply.description}
            if reply.model is not None:
                schema = refs[(reply.model, "serialization")]
                out["content"] = {reply.media_type: {"schema": schema}}
            else:
                out["content"] = {reply.media_type: {"schema": {"type": "string"}}}
            responses[str(status)] = out
        entry["responses"] = responses
        paths.setdefault(op.path, {})[op.method.lower()] = entry

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "python -m examples.booking token ACTOR [--admin]",
                }
            },
        },
    }


def _operation_id(op: Operation) -> str:
    name = op.path.strip("/").replace("/", "_").replace(".", "_") or "page"
    return f"{op.method.lower()}_{name}"
