"""The OpenAPI document states the contract's rules (issue 10): what it calls valid, the
server accepts; what it calls invalid, the server refuses; and every valid URL fits."""

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from tasks_api.config import Settings
from tasks_api.errors import MAX_URL_BYTES
from tasks_api.main import create_app
from tasks_api.schemas.task import TaskCreate, TaskUpdate
from tests.contract.conftest import each_operation

TASK_PATH = "/api/{user_id}/tasks/{task_id}"
# Each code point of a URL's text at worst: a 4-byte character, percent-encoded.
WORST_BYTES_PER_CHARACTER = 12
# Query values made only of these are sent as they are, a byte a character.
_URL_SAFE = re.compile(r"^\^(\[[A-Za-z0-9_\\.\-]+\][*+]?|\\\.)+\$$")


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    document = create_app(Settings(_env_file=None, environment="test")).openapi()
    schema = {"components": document["components"], "$ref": f"#/components/schemas/{name}"}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


class TestBodies:
    def test_title(self, document: dict[str, Any]) -> None:
        for model in ("TaskCreate", "TaskUpdate"):
            title = _schema(document, model)["properties"]["title"]
            assert title["type"] == "string"
            assert title["minLength"] == 1
            assert "pattern" in title

    def test_description(self, document: dict[str, Any]) -> None:
        for model in ("TaskCreate", "TaskUpdate"):
            description = _schema(document, model)["properties"]["description"]
            text, null = description["anyOf"]
            assert text["maxLength"] == 10_000
            assert null == {"type": "null"}

    def test_tags(self, document: dict[str, Any]) -> None:
        for model in ("TaskCreate", "TaskUpdate"):
            tags = _schema(document, model)["properties"]["tags"]
            assert tags["type"] == "array"
            assert tags["maxItems"] == 20
            assert tags["uniqueItems"] is True
            assert tags["items"]["minLength"] == 1
            assert "pattern" in tags["items"]

    def test_update_nullability_and_min_properties(self, document: dict[str, Any]) -> None:
        update = _schema(document, "TaskUpdate")
        assert update["minProperties"] == 1
        assert update["additionalProperties"] is False
        for name in ("title", "priority", "tags", "is_completed"):
            assert "null" not in json.dumps(update["properties"][name]), name
        for name in ("description", "due_at"):
            assert {"type": "null"} in update["properties"][name]["anyOf"], name

    def test_formats(self, document: dict[str, Any]) -> None:
        task = _schema(document, "TaskPublic")["properties"]
        assert task["id"]["format"] == "uuid"
        assert task["created_at"]["format"] == "date-time"
        assert _schema(document, "TaskCreate")["properties"]["due_at"]["anyOf"][0] == {
            "type": "string",
            "format": "date-time",
        }


class TestOperations:
    def test_every_response_names_its_request_id(self, document: dict[str, Any]) -> None:
        for method, path, operation in each_operation(document):
            for status, response in operation["responses"].items():
                header = response.get("headers", {}).get("X-Request-ID")
                assert header, f"{method} {path} {status}"
                assert header["required"] is True, f"{method} {path} {status}"

    def test_every_operation_documents_the_url_limit_and_failure(
        self, document: dict[str, Any]
    ) -> None:
        for method, path, operation in each_operation(document):
            assert {"414", "500"} <= set(operation["responses"]), f"{method} {path}"

    def test_bodies_document_their_errors(self, document: dict[str, Any]) -> None:
        for method, path, operation in each_operation(document):
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= set(operation["responses"]), f"{method} {path}"

    def test_if_match_documents_412(self, document: dict[str, Any]) -> None:
        for method, path, operation in each_operation(document):
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if "If-Match" in names:
                assert "412" in operation["responses"], f"{method} {path}"

    def test_no_parameter_is_nullable(self, document: dict[str, Any]) -> None:
        for method, path, operation in each_operation(document):
            for parameter in operation.get("parameters", []):
                assert "null" not in json.dumps(parameter["schema"]), (method, path, parameter)

    def test_user_id_length(self, document: dict[str, Any]) -> None:
        for _, path, operation in each_operation(document):
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "user_id":
                    assert parameter["schema"]["minLength"] == 1, path
                    assert parameter["schema"]["maxLength"] == 255, path

    def test_create_links_to_every_operation_on_its_task(self, document: dict[str, Any]) -> None:
        operations = {op["operationId"]: (path, op) for _, path, op in each_operation(document)}
        _, create = operations["create_task"]
        links = create["responses"]["201"]["links"]
        on_task = {
            operation_id
            for operation_id, (path, _) in operations.items()
            if path == TASK_PATH or path.startswith(TASK_PATH + "/")
        }
        assert on_task >= {"get_task", "update_task", "patch_task", "complete_task", "delete_task"}
        assert set(links) == on_task
        for operation_id, link in links.items():
            assert link["operationId"] == operation_id
            assert link["parameters"]["task_id"] == "$response.body#/data/id"
            assert link["parameters"]["user_id"] == "$request.path.user_id"


def _worst_value_bytes(schema: dict[str, Any], document: dict[str, Any]) -> int:
    if "$ref" in schema:
        return _worst_value_bytes(document_ref(document, schema["$ref"]), document)
    if "anyOf" in schema:
        return max(_worst_value_bytes(branch, document) for branch in schema["anyOf"])
    if "enum" in schema:
        return max(len(str(value)) for value in schema["enum"])
    if "const" in schema:
        return len(str(schema["const"]))
    kind = schema.get("type")
    if kind == "integer":
        return len(str(schema["maximum"]))
    if kind == "boolean":
        return len("false")
    if kind == "string" and schema.get("format") == "date-time":
        return 3 * len("2026-12-01T17:00:00.123456+05:30")  # ":" and "+" percent-encoded
    if kind == "string" and schema.get("format") == "uuid":
        return 36
    if kind == "string":
        assert "maxLength" in schema, f"a string in the URL needs a maxLength: {schema}"
        per_character = 1 if _URL_SAFE.match(schema.get("pattern", "")) else 12
        return int(schema["maxLength"]) * per_character
    raise AssertionError(f"no worst case for {schema}")


def document_ref(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def test_every_valid_url_fits_the_limit(document: dict[str, Any]) -> None:
    """The longest URL each operation's parameters allow, in 4-byte characters, is one the
    server answers: a new query parameter needs limits that keep it so."""
    for method, path, operation in each_operation(document):
        length = len(path.encode())
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            if parameter["in"] == "path":
                length += _worst_value_bytes(schema, document) - len(parameter["name"]) - 2
            elif parameter["in"] == "query":
                name = len(parameter["name"]) + 2  # "&name="
                if schema.get("type") == "array":
                    item = _worst_value_bytes(schema["items"], document)
                    length += schema["maxItems"] * (name + item)
                else:
                    length += name + _worst_value_bytes(schema, document)
        assert length <= MAX_URL_BYTES, f"{method} {path}: up to {length} bytes"


def test_examples_in_parameters_and_headers_match(document: dict[str, Any]) -> None:
    for method, path, operation in each_operation(document):
        items = list(operation.get("parameters", []))
        for response in operation["responses"].values():
            items.extend(response.get("headers", {}).values())
        for item in items:
            if "example" in item:
                errors = list(Draft202012Validator(item["schema"]).iter_errors(item["example"]))
                assert not errors, f"{method} {path}: {errors[0].message}"


def _schemas_with_examples(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("examples"), list) and ("type" in node or "properties" in node):
            yield node
        for value in node.values():
            yield from _schemas_with_examples(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schemas_with_examples(item)


def test_schema_examples_match(document: dict[str, Any]) -> None:
    """The request bodies' examples (Swagger UI's "Try it out", schemathesis's examples phase)
    are valid, and the server accepts them."""
    found = list(_schemas_with_examples(document))
    assert found, "no schema carries examples"
    for schema in found:
        validator = Draft202012Validator({"components": document["components"], **schema})
        for example in schema["examples"]:
            errors = [error.message for error in validator.iter_errors(example)]
            assert not errors, f"{example}: {errors}"
    for example in _schema(document, "TaskCreate")["examples"]:
        assert _accepted(TaskCreate, example)


def _accepted(model: Any, body: dict[str, Any]) -> bool:
    try:
        model.model_validate_json(json.dumps(body))
    except ValidationError:
        return False
    return True


_TEXT = st.text(
    alphabet=st.sampled_from(
        ["a", "é", "😀", " ", "\t", "\x0b", "\u3000", "\ufeff", "\x1f", "\x00"]
    )
    | st.characters(),
    max_size=60,
)
_SETTINGS = settings(
    max_examples=300, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


class TestTheDocumentAgreesWithTheServer:
    """Property: a body the document calls valid is one the server accepts, and the reverse."""

    @_SETTINGS
    @given(title=_TEXT, tags=st.lists(_TEXT, max_size=4))
    def test_create(self, title: str, tags: list[str]) -> None:
        body = {"title": title, "tags": tags}
        valid = _validator("TaskCreate").is_valid(body)
        assert valid == _accepted(TaskCreate, body), body

    @_SETTINGS
    @given(
        body=st.dictionaries(
            st.sampled_from(["title", "description", "priority", "tags", "is_completed"]),
            st.none() | _TEXT | st.booleans() | st.sampled_from(["low", "high"]),
            max_size=3,
        )
    )
    def test_update(self, body: dict[str, Any]) -> None:
        valid = _validator("TaskUpdate").is_valid(body)
        assert valid == _accepted(TaskUpdate, body), body

    @pytest.mark.parametrize("length", [500, 501])
    def test_title_length_counts_code_points(self, length: int) -> None:
        body = {"title": "😀" * length}
        valid = _validator("TaskCreate").is_valid(body)
        assert valid is (length <= 500) is _accepted(TaskCreate, body)

    def test_padding_past_the_length_is_stricter_in_the_document(self) -> None:
        """The contract counts after trimming, which JSON Schema cannot: the document counts
        the text as sent, so every title it allows is accepted, and a padded one the server
        takes is one the document refuses (specs/input-rules.md)."""
        body = {"title": " \u3000" + "😀" * 500 + "\t"}
        assert not _validator("TaskCreate").is_valid(body)
        assert _accepted(TaskCreate, body)
