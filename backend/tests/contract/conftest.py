import json
from collections.abc import Iterator
from typing import Any

import pytest

from tasks_api.config import Settings
from tasks_api.main import create_app

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # The document does not depend on settings: no database, no secrets needed.
    app = create_app(Settings(_env_file=None, environment="test"))
    return json.loads(json.dumps(app.openapi()))


def each_operation(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation of the document."""
    for path, by_method in document["paths"].items():
        for method, operation in by_method.items():
            if method in METHODS:
                yield method, path, operation
