"""Idempotent create: however often a keyed POST is retried, at most one task is created.

The design (states, races, retention) is in specs/idempotency.md.
"""

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from tasks_api.database import Database
from tasks_api.errors import Conflict, IdempotencyKeyReused
from tasks_api.repositories import idempotency_repository, task_repository
from tasks_api.schemas.task import TaskCreate, TaskPublic
from tasks_api.services import task_operations

# How soon a client may retry a key that is still in flight.
RETRY_AFTER_SECONDS = 1


class Created(NamedTuple):
    task: Mapping[str, Any]
    # True when the task comes from an earlier request with the same Idempotency-Key.
    replayed: bool


def request_hash(payload: TaskCreate) -> bytes:
    """SHA-256 of the body as parsed: whitespace, key order and escapes do not count.

    Only the fields the client sent are hashed, so `{}` and `{"tags": []}` are different
    bodies even though they create the same task.
    """
    canonical = orjson.dumps(
        payload.model_dump(mode="json", exclude_unset=True), option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).digest()


def lock_id(user_id: str, key: str) -> int:
    """The key's advisory lock: 64 bits of a hash of (user, key), length-prefixed so that
    no two different pairs share an input. A collision would only cause a spurious 409."""
    digest = hashlib.sha256(f"idempotency:{len(user_id)}:{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _from_snapshot(snapshot: str | dict[str, Any]) -> dict[str, Any]:
    # jsonb arrives as its text; to_jsonb wrote timestamps in the session's time zone, and
    # the API answers in UTC.
    data = orjson.loads(snapshot) if isinstance(snapshot, str) else snapshot
    task = TaskPublic.model_validate(data).model_dump()
    return {
        name: value.astimezone(UTC) if isinstance(value, datetime) else value
        for name, value in task.items()
    }


async def create(database: Database, user_id: str, payload: TaskCreate, key: str | None) -> Created:
    async with database.transaction(user_id) as tx:
        if key is None:
            # No key, no idempotency work: not one more round trip than a plain insert.
            return Created(await task_operations.create(tx, user_id, payload), replayed=False)
        body_hash = request_hash(payload)
        if not await idempotency_repository.try_lock(tx, lock_id(user_id, key)):
            raise Conflict(headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        outcome = await idempotency_repository.create_task_once(
            tx,
            user_id=user_id,
            key=key,
            request_hash=body_hash,
            lock_id=lock_id(user_id, key),
            values=task_operations.new_task_values(user_id, payload),
        )
        if outcome["stored_hash"] is not None:
            if bytes(outcome["stored_hash"]) != body_hash:
                raise IdempotencyKeyReused
            return Created(_from_snapshot(outcome["snapshot"]), replayed=True)
        if outcome["key_stored"]:
            return Created(
                {name: outcome[name] for name in task_repository.COLUMN_NAMES}, replayed=False
            )
        # Another request holds the key (in flight), or finished between this statement's
        # snapshot and its lock. In the second case this statement may have inserted a
        # task: raising here rolls it back, and the client's retry gets the replay.
        raise Conflict(headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
