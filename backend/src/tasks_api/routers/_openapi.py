"""What the routes tell OpenAPI: error responses with the envelope, and hand-read bodies."""

from typing import Any

from pydantic import BaseModel

from tasks_api.errors import AppError
from tasks_api.schemas.envelope import ErrorEnvelope

# Bodies are read by `_body.json_body` (so auth is checked before the body is parsed);
# their schemas are added to the components by `main.custom_openapi`.
BODY_MODELS: dict[str, type[BaseModel]] = {}


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    return {
        error.status_code: {
            "model": ErrorEnvelope,
            "description": error.default_message,
            "content": {"application/json": {"example": error.example()}},
        }
        for error in errors
    }


def json_request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    BODY_MODELS[model.__name__] = model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}
    }
