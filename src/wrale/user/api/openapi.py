"""The OpenAPI document as the API really answers: every operation documents the JSON
error body (``{"error": {code, message, details}}``) for the 4xx it can return, instead of
FastAPI's default validation error shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
ERRORS = {
    "401": "Missing or invalid credentials",
    "403": "The role does not allow it",
    "404": "Not found (or another organisation's)",
    "409": "Conflicts with the current state",
    "422": "Invalid request",
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        doc.setdefault("components", {}).setdefault("schemas", {})["ErrorBody"] = ERROR_SCHEMA
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        for path, operations in doc.get("paths", {}).items():
            for op in operations.values():
                responses = op.setdefault("responses", {})
                for status, text in ERRORS.items():
                    if status == "401" and path in ("/healthz", "/readyz"):
                        continue
                    responses[status] = {
                        "description": text,
                        "content": {"application/json": {"schema": ref}},
                    }
        ready = doc.get("paths", {}).get("/readyz", {}).get("get")
        if ready is not None:
            ready["responses"]["503"] = {"description": "Database unreachable or schema old"}
        schemas = doc["components"]["schemas"]
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
