"""The body of POST /api/{user_id}/batch: each operation is its single request's body.

The task fields are validated by the very schemas of the single requests (TaskCreate,
TaskUpdate, TaskComplete, TaskMove), so an operation follows exactly the same rules.
"""

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tasks_api.errors import validation_details
from tasks_api.schemas.task import (
    READ_ONLY_FIELDS,
    TaskComplete,
    TaskCreate,
    TaskMove,
    TaskPublic,
    TaskUpdate,
)

BATCH_MAX = 100

IfMatch = Annotated[
    StrictStr | None,
    Field(
        max_length=8192,
        description="An ETag of the task, as in the If-Match header: apply only if current.",
    ),
]
TaskId = Annotated[UUID, Field(description="The task the operation applies to.")]
_OPERATION = ConfigDict(extra="forbid")


class CreateOperation(BaseModel):
    model_config = _OPERATION

    op: Literal["create"]
    task: TaskCreate


class UpdateOperation(BaseModel):
    model_config = _OPERATION

    op: Literal["update"]
    id: TaskId
    changes: TaskUpdate
    if_match: IfMatch = None


class CompleteOperation(TaskComplete):
    """`is_completed` defaults to true, as the body of PATCH .../complete does."""

    op: Literal["complete"]
    id: TaskId
    if_match: IfMatch = None


class MoveOperation(TaskMove):
    op: Literal["move"]
    id: TaskId
    if_match: IfMatch = None


class DeleteOperation(BaseModel):
    model_config = _OPERATION

    op: Literal["delete"]
    id: TaskId
    if_match: IfMatch = None


Operation = Annotated[
    CreateOperation | UpdateOperation | CompleteOperation | MoveOperation | DeleteOperation,
    Field(discriminator="op"),
]


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operations: list[Operation] = Field(
        min_length=1,
        max_length=BATCH_MAX,
        description=f"1 to {BATCH_MAX} writes, applied in order in one transaction: all or "
        "nothing.",
    )


class Deleted(BaseModel):
    id: UUID
    deleted: Literal[True]


BatchResult = TaskPublic | Deleted

_KINDS = ("create", "update", "complete", "move", "delete")
# Where an operation nests a single request's body: its read-only fields are named so.
_BODIES = frozenset({"task", "changes"})


def batch_details(errors: Any) -> list[dict[str, str]]:
    """Pydantic's errors, each naming `operations[N].<field>` as the contract spells it.

    Pydantic puts the discriminator's value after the index (`operations.3.update.id`); the
    client knows the operation by its index alone.
    """
    details = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if len(loc) >= 2 and loc[0] == "operations" and isinstance(loc[1], int):
            rest = loc[3:] if len(loc) > 2 else []
            if error.get("type") in {"union_tag_invalid", "union_tag_not_found"}:
                rest = ["op"]
            loc = [f"operations[{loc[1]}]", *rest]
        [detail] = validation_details([{**error, "loc": tuple(loc)}])
        if loc[-1:] == ["op"] and str(loc[0]).startswith("operations["):
            detail["message"] = "must be one of " + ", ".join(_KINDS)
        if (
            error.get("type") == "extra_forbidden"
            and len(loc) >= 3
            and loc[-2] in _BODIES
            and loc[-1] in READ_ONLY_FIELDS
        ):
            detail["message"] = "is read-only"
        details.append(detail)
    return details
