"""Schemathesis hooks (schemathesis.toml): what a generator cannot know about this API."""

from typing import Any

import schemathesis

# Set by routers/_openapi_rules on the parameters that carry a token the server issued and
# signed (a list cursor, a sync token): any value drawn for them is a tampered one.
SERVER_ISSUED = "x-server-issued"
# Body fields naming another task of the user's that the contract answers with a 400, not a
# 404, when there is none (a move's `after`, also inside a batch).
TASK_REFERENCES = frozenset({"after"})


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    _pin_path_parameters(case)
    _leave_out_server_issued(case)
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive:
        _no_drawn_task_references(case.body)
    return case


def _pin_path_parameters(case: schemathesis.Case) -> None:
    """The configured `path.*` parameters (the token's user) in every step of the stateful
    run too, which draws them otherwise: any other user is a 403 before anything else."""
    for key, value in case.operation.schema.config.parameters.items():
        location, _, name = key.partition(".")
        if location == "path" and name in (case.path_parameters or {}):
            case.path_parameters[name] = value


def _leave_out_server_issued(case: schemathesis.Case) -> None:
    """A valid request leaves server-issued tokens out: the contract makes a drawn one a
    400, which the document states but no schema can tell from a real one. Invalid requests
    keep whatever was drawn."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    for parameter in case.operation.iter_parameters():
        definition: Any = parameter.definition
        if not definition.get(SERVER_ISSUED):
            continue
        container = case.query if parameter.location.value == "query" else case.headers
        if container:
            container.pop(parameter.name, None)


def _no_drawn_task_references(body: Any) -> None:
    """A drawn task id names no task of the user's: a 400 naming the field, by the contract.
    A valid request says `null` there instead (a move to the first place)."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key in TASK_REFERENCES and isinstance(value, str):
                body[key] = None
            else:
                _no_drawn_task_references(value)
    elif isinstance(body, list):
        for item in body:
            _no_drawn_task_references(item)
