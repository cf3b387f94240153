"""Rules that hold for every operation, written into the document after FastAPI made it.

Generic on purpose: an operation added later gets them from its shape (a path parameter, a
body, an If-Match header, a task path) without its route listing them.
"""

import copy
from typing import Any

from tasks_api.errors import (
    AppError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    UnsupportedMediaType,
    URITooLong,
    ValidationFailed,
)
from tasks_api.routers._openapi import HEADERS, error_responses

_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})
USER_ID_MAX = 255
# The create whose 201 links to the operations on the task it made (OpenAPI links: clients
# and stateful testers follow them), and the paths of those operations.
CREATE_OPERATION = "create_task"
TASK_PATH = "/api/{user_id}/tasks/{task_id}"
# Parameters that carry a token the server issued and signed (a list cursor, a sync token):
# marked so that tools drawing values know a drawn one is refused (tests/support).
SERVER_ISSUED = frozenset({("query", "cursor"), ("query", "since"), ("header", "Last-Event-ID")})
_CACHE_CONTROL = {
    "description": "`no-store`: an answer about your tasks is never cached.",
    "schema": {"type": "string", "enum": ["no-store"]},
    "required": True,
}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in _METHODS
    ]


def _error_response(error: type[AppError]) -> dict[str, Any]:
    # A copy: the YAML export would write shared objects as anchors and aliases.
    response = copy.deepcopy(error_responses(error)[error.status_code])
    model = response.pop("model")
    content = response["content"]["application/json"]
    content["schema"] = {"$ref": f"#/components/schemas/{model.__name__}"}
    return response


def _document(operation: dict[str, Any], *errors: type[AppError]) -> None:
    responses = operation.setdefault("responses", {})
    for error in errors:
        responses.setdefault(str(error.status_code), _error_response(error))


def _parameters_are_never_null(operation: dict[str, Any]) -> None:
    """A query string, a header or a path carries text or nothing: Pydantic's `Optional`
    becomes `anyOf [..., null]`, which a client cannot send."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        branches = schema.get("anyOf")
        if branches is None:
            continue
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1:
            del schema["anyOf"]
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
        if schema.get("default", ...) is None:
            del schema["default"]


def _parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path" and parameter["name"] == "user_id":
            parameter["schema"].update(minLength=1, maxLength=USER_ID_MAX)
        if (parameter["in"], parameter["name"]) in SERVER_ISSUED:
            parameter["x-server-issued"] = True


def _errors_by_shape(path: str, operation: dict[str, Any]) -> None:
    parameters = operation.get("parameters", [])
    # Every URL can be too long, every request can fail.
    _document(operation, URITooLong, AppError)
    if any(parameter["in"] in {"path", "query"} for parameter in parameters):
        _document(operation, ValidationFailed)
    if any(parameter["in"] == "path" for parameter in parameters):
        # An unknown task, or a URL that names no route (an empty user id: `/api//tasks`).
        _document(operation, NotFound)
    if "requestBody" in operation:
        _document(operation, ValidationFailed, PayloadTooLarge, UnsupportedMediaType)
    if any(p["in"] == "header" and p["name"] == "If-Match" for p in parameters):
        _document(operation, PreconditionFailed)


def _response_headers(path: str, operation: dict[str, Any]) -> None:
    for response in operation["responses"].values():
        headers = response.setdefault("headers", {})
        headers.setdefault("X-Request-ID", copy.deepcopy(HEADERS["X-Request-ID"]))
        if path.startswith("/api/"):
            headers.setdefault("Cache-Control", copy.deepcopy(_CACHE_CONTROL))


def _links_from_create(schema: dict[str, Any]) -> None:
    targets = {
        operation["operationId"]: operation
        for path, _, operation in _operations(schema)
        if path == TASK_PATH or path.startswith(TASK_PATH + "/")
    }
    for _, _, operation in _operations(schema):
        if operation.get("operationId") != CREATE_OPERATION:
            continue
        links = operation["responses"]["201"].setdefault("links", {})
        for operation_id, target in sorted(targets.items()):
            names = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
            parameters = {"user_id": "$request.path.user_id", "task_id": "$response.body#/data/id"}
            links[operation_id] = {
                "operationId": operation_id,
                "parameters": {name: parameters[name] for name in sorted(names)},
                "description": "The task this request created.",
            }


def apply(schema: dict[str, Any]) -> None:
    for path, _, operation in _operations(schema):
        _parameters_are_never_null(operation)
        _parameters(operation)
        _errors_by_shape(path, operation)
        _response_headers(path, operation)
        operation["responses"] = dict(sorted(operation["responses"].items()))
    _links_from_create(schema)
