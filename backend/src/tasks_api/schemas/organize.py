"""Shapes of clear completed and of batches (the move body is schemas.task.TaskMove)."""

from pydantic import BaseModel


class Cleared(BaseModel):
    deleted: int
