"""The OpenAPI document, completed with what FastAPI cannot see from the routes: every error the
server can answer before a route runs (a body that is not JSON or too large, request validation)
in the one error shape, so that the schema lists every status an operation can return."""

from typing import Any

from fastapi import FastAPI

from app.core.errors import OpenAIErrorResponse, is_openai_path

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}
# Under /v1 every error takes OpenAI's shape (app/core/errors.py).
OPENAI_ERROR_SCHEMA = {"$ref": "#/components/schemas/OpenAIErrorResponse"}

# Answered by the framework layers around every operation that takes a body.
BODY_ERRORS = {
    "400": "`malformed_json`: The request body is not valid JSON (or not UTF-8).",
    "413": "`payload_too_large`: The request body is larger than the server accepts.",
}
VALIDATION_ERROR = (
    "`validation_error`: A field is missing or invalid; `details` says which and why."
)


def _error_response(description: str, schema: dict[str, str] = ERROR_SCHEMA) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _merge(
    responses: dict[str, Any], status: str, description: str, schema: dict[str, str]
) -> None:
    existing = responses.get(status)
    if existing is None:
        responses[status] = _error_response(description, schema)
        return
    if description not in existing.get("description", ""):
        existing["description"] = f"{existing['description']}; {description}"
    existing["content"] = {"application/json": {"schema": schema}}


def install_openapi(app: FastAPI) -> None:
    """Makes app.openapi() (and /openapi.json) return the completed document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _complete(generate())
        return app.openapi_schema  # type: ignore[return-value]  # set by generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(schema: dict[str, Any]) -> None:
    openai_paths = False
    for path, path_item in schema.get("paths", {}).items():
        shape = ERROR_SCHEMA
        if is_openai_path(path):
            shape, openai_paths = OPENAI_ERROR_SCHEMA, True
        for operation in path_item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if "422" in responses:
                # FastAPI documents its own validation body; Parley answers in the error shape.
                if responses["422"].get("description") == "Validation Error":
                    responses["422"] = _error_response(VALIDATION_ERROR, shape)
                else:
                    _merge(responses, "422", VALIDATION_ERROR, shape)
            if "requestBody" in operation:
                for status, description in BODY_ERRORS.items():
                    _merge(responses, status, description, shape)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if openai_paths and "OpenAIErrorResponse" not in components:
        components["OpenAIErrorResponse"] = OpenAIErrorResponse.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
