"""The OpenAPI document: the committed copy is current, and it documents the contract."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from tests.contract.conftest import each_operation

SPEC_FILE = Path(__file__).resolve().parents[3] / "specs" / "contracts" / "openapi.yaml"
# The contract's only 422: an Idempotency-Key reused with another body, on create and batch.
UNPROCESSABLE = {
    ("post", "/api/{user_id}/tasks"): "IDEMPOTENCY_KEY_REUSED",
    ("post", "/api/{user_id}/batch"): "IDEMPOTENCY_KEY_REUSED",
}


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _examples(response: dict[str, Any]) -> list[Any]:
    content = response.get("content", {}).get("application/json", {})
    examples = [item["value"] for item in content.get("examples", {}).values()]
    return examples + ([content["example"]] if "example" in content else [])


def test_committed_document_is_current(document: dict[str, Any]) -> None:
    assert SPEC_FILE.exists(), f"{SPEC_FILE} is missing: run `make openapi` and commit it"
    committed = yaml.safe_load(SPEC_FILE.read_text())
    assert committed == document, (
        f"{SPEC_FILE.name} differs from the API's OpenAPI document: run `make openapi` "
        "and commit the result"
    )


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    for ref in set(_refs(document)):
        _resolve(document, ref)


def test_every_operation_is_named_and_summarised(document: dict[str, Any]) -> None:
    ids = []
    for method, path, operation in each_operation(document):
        assert operation.get("operationId"), f"{method} {path} has no operationId"
        assert operation.get("summary"), f"{method} {path} has no summary"
        ids.append(operation["operationId"])
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_contract_paths_are_documented(document: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in each_operation(document)}
    assert documented >= {
        ("get", "/api/{user_id}/tasks"),
        ("post", "/api/{user_id}/tasks"),
        ("get", "/api/{user_id}/tasks/{task_id}"),
        ("put", "/api/{user_id}/tasks/{task_id}"),
        ("patch", "/api/{user_id}/tasks/{task_id}"),
        ("delete", "/api/{user_id}/tasks/{task_id}"),
        ("patch", "/api/{user_id}/tasks/{task_id}/complete"),
        ("get", "/api/{user_id}/stats"),
        ("get", "/health"),
        ("get", "/health/ready"),
    }


def test_no_fastapi_422(document: dict[str, Any]) -> None:
    """Invalid input is a 400 here; a 422 is only the contract's IDEMPOTENCY_KEY_REUSED."""
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, operation in each_operation(document):
        response = operation["responses"].get("422")
        if response is None:
            continue
        assert (method, path) in UNPROCESSABLE, f"{method} {path} documents a 422"
        codes = {example["error"]["code"] for example in _examples(response)}
        assert codes == {UNPROCESSABLE[method, path]}


def test_api_operations_document_the_auth_and_validation_errors(
    document: dict[str, Any],
) -> None:
    for method, path, operation in each_operation(document):
        if not path.startswith("/api/"):
            continue
        responses = operation["responses"]
        for status in ("400", "401", "403"):
            assert status in responses, f"{method} {path} does not document {status}"
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}


def test_task_operations_document_not_found(document: dict[str, Any]) -> None:
    for method, path, operation in each_operation(document):
        if "{task_id}" in path:
            assert "404" in operation["responses"], f"{method} {path} does not document 404"


def test_bearer_security(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    bearer = [
        name
        for name, scheme in schemes.items()
        if scheme == scheme | {"type": "http", "scheme": "bearer"}
    ]
    assert bearer, schemes
    for method, path, operation in each_operation(document):
        requirement = {name for item in operation.get("security", []) for name in item}
        if path.startswith("/api/"):
            assert requirement & set(bearer), f"{method} {path} does not require the bearer token"
        else:
            assert not requirement, f"{method} {path} needs no token"


def test_write_bodies_are_documented(document: dict[str, Any]) -> None:
    expected = {
        ("post", "/api/{user_id}/tasks"): ("TaskCreate", True),
        ("put", "/api/{user_id}/tasks/{task_id}"): ("TaskUpdate", True),
        ("patch", "/api/{user_id}/tasks/{task_id}"): ("TaskUpdate", True),
        ("patch", "/api/{user_id}/tasks/{task_id}/complete"): ("TaskComplete", False),
    }
    operations = {(method, path): op for method, path, op in each_operation(document)}
    for key, (schema, required) in expected.items():
        body = operations[key]["requestBody"]
        assert body["required"] is required, key
        ref = body["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{schema}"
        model = document["components"]["schemas"][schema]
        assert model.get("additionalProperties") is False, f"{schema} must refuse unknown fields"
    assert document["components"]["schemas"]["TaskCreate"]["required"] == ["title"]


def test_examples_match_their_schemas(document: dict[str, Any]) -> None:
    """What Swagger UI shows a developer is what the API really sends."""
    for method, path, operation in each_operation(document):
        for status, response in operation["responses"].items():
            examples = _examples(response)
            if not examples:
                continue
            schema = {
                "components": document["components"],
                **response["content"]["application/json"]["schema"],
            }
            validator = Draft202012Validator(schema)
            for example in examples:
                errors = [error.message for error in validator.iter_errors(example)]
                assert not errors, f"{method} {path} {status} example: {errors}"
