"""Every response the integration tests see is checked against the OpenAPI document."""

import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator


class OpenAPIChecker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._routes = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), operations)
            for path, operations in spec["paths"].items()
        ]

    def _operation(self, method: str, path: str) -> dict[str, Any] | None:
        for pattern, operations in self._routes:
            if pattern.match(path):
                return operations.get(method.lower())
        return None

    def check(self, response: httpx.Response) -> None:
        request = response.request
        operation = self._operation(request.method, request.url.path)
        if operation is None:
            return  # an unknown route or method: nothing is documented to check against
        documented = operation["responses"]
        status = str(response.status_code)
        assert status in documented, (
            f"{request.method} {request.url.path} answered {status}, which its OpenAPI "
            f"operation {operation['operationId']} does not document ({sorted(documented)})"
        )
        content = documented[status].get("content", {}).get("application/json")
        if content is None or not response.content:
            return
        schema = {"components": self.spec["components"], **content["schema"]}
        errors = list(Draft202012Validator(schema).iter_errors(response.json()))
        assert not errors, f"{request.method} {request.url.path} {status}: {errors[0].message}"
