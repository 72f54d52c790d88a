"""OpenAPI text for routes whose bodies are msgspec structs: request bodies and responses by ref."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from scoreboard.api.schemas import SCHEMAS

REF = "#/components/schemas/{name}"
PROBLEM_JSON = "application/problem+json"
_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Invalid request (problem document)",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    429: "Rate limited (Retry-After, RateLimit-Policy and RateLimit headers)",
    503: "Database unreachable (Retry-After)",
}


def body(kind: type) -> dict[str, Any]:
    """`openapi_extra` for a JSON request body of msgspec struct `kind`."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(name=kind.__name__)}}},
        }
    }


def responses(success: tuple[int, type | None], *problems: int) -> dict[int | str, dict[str, Any]]:
    """The documented responses of a route: its success body and its problem statuses."""
    status, kind = success
    documented: dict[int | str, dict[str, Any]] = {status: {"description": _STATUS_TEXT.get(status, "OK")}}
    if kind is not None:
        documented[status]["content"] = {
            "application/json": {"schema": {"$ref": REF.format(name=kind.__name__)}}
        }
    for code in problems:
        documented[code] = problem(code)
    return documented


def problem(status: int) -> dict[str, Any]:
    """The documented answer for an error status: a problem document."""
    return {
        "description": _STATUS_TEXT.get(status, "Error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(name="ProblemOut")}}},
    }


def install(app: FastAPI) -> None:
    """Replace app.openapi with one that also carries the msgspec schemas."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _, components = msgspec.json.schema_components(SCHEMAS, ref_template=REF)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            _drop_validation_error_schemas(schema)
            _document_common_refusals(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_common_refusals(schema: dict[str, Any]) -> None:
    """Answers any API operation can give whatever its route says: a body is refused as invalid
    (400) or too large (413, counted on the bytes received), and the database may be unreachable
    (503). The fuzz tests hold every route to its documented statuses."""
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            statuses = ("400", "413", "503") if "requestBody" in operation else ("503",)
            for status in statuses:
                answers.setdefault(status, problem(int(status)))


def _drop_validation_error_schemas(schema: dict[str, Any]) -> None:
    """FastAPI documents 422 for parameters; we answer 400 with a problem document instead."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            answers = operation.get("responses", {})
            if "422" in answers:
                del answers["422"]
                answers.setdefault("400", problem(400))
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
