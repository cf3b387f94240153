"""A batch: up to 100 writes in one transaction, all or nothing, each one exactly its single
request (the functions of task_operations), with an optional Idempotency-Key."""

import hashlib
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

import orjson

from tasks_api.database import Database, Transaction
from tasks_api.errors import (
    AppError,
    Conflict,
    IdempotencyKeyReused,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from tasks_api.repositories import batch_repository
from tasks_api.responses import dumps
from tasks_api.schemas.batch import (
    BatchRequest,
    CompleteOperation,
    CreateOperation,
    DeleteOperation,
    MoveOperation,
    Operation,
    UpdateOperation,
)
from tasks_api.services import task_operations
from tasks_api.services.idempotency_service import RETRY_AFTER_SECONDS, lock_id

# The versions each operation's if_match accepts (None: any), parsed as If-Match is.
Versions = Sequence[Collection[int] | None]


class BatchDone(NamedTuple):
    # One result per operation; for a replay, as the first answer had them (JSON values).
    results: list[Any]
    replayed: bool


def request_hash(batch: BatchRequest) -> bytes:
    """SHA-256 of the body as parsed (as a keyed create's), marked as a batch's."""
    canonical = orjson.dumps(
        batch.model_dump(mode="json", exclude_unset=True), option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(b"batch:" + canonical).digest()


def stored_key(key: str) -> str:
    """The batch's key as stored beside the keyed creates' (same table, same user): apart
    from any create key of up to 255 characters that a client would not pick on purpose,
    and within the column's 255 characters whatever the key's length."""
    return "batch:" + hashlib.sha256(key.encode()).hexdigest()


async def run(
    database: Database,
    user_id: str,
    batch: BatchRequest,
    versions: Versions,
    key: str | None,
) -> BatchDone:
    operations = batch.operations
    if key is None:
        async with database.transaction(user_id) as tx:
            return BatchDone(await _apply_all(tx, user_id, operations, versions), False)
    body_hash = request_hash(batch)
    key = stored_key(key)
    conflict = Conflict(headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    async with database.transaction(user_id) as tx:
        claimed = await batch_repository.claim(tx, user_id, key, lock_id(user_id, key))
        if not claimed["acquired"]:
            raise conflict
        if claimed["stored_hash"] is not None:
            if bytes(claimed["stored_hash"]) != body_hash:
                raise IdempotencyKeyReused
            return BatchDone(_answer(claimed["snapshot"]), True)
        results = await _apply_all(tx, user_id, operations, versions)
        # The answer as it is sent, so that a replay is the same JSON.
        answer = orjson.dumps(dumps(results).decode()).decode()
        if not await batch_repository.store(tx, user_id, key, body_hash, answer):
            # The key was stored by a request that committed after the claim's snapshot:
            # this one's writes roll back, and a retry gets that request's answer.
            raise conflict
    return BatchDone(results, False)


def _answer(snapshot: str) -> list[Any]:
    # The stored JSON string holds the answer's JSON text (key order kept, unlike jsonb's
    # objects); the driver hands the jsonb over decoded or as its text.
    data = orjson.loads(snapshot)
    return orjson.loads(data) if isinstance(data, str) else data  # type: ignore[no-any-return]


async def _apply_all(
    tx: Transaction, user_id: str, operations: Sequence[Operation], versions: Versions
) -> list[Any]:
    results: list[Any] = []
    index = 0
    while index < len(operations):
        run = _update_run(operations, index)
        if len(run) > 1:
            updates = [(op.id, op.changes, versions[index + k]) for k, op in enumerate(run)]
            try:
                tasks = await task_operations.update_many(tx, user_id, updates)
            except task_operations.Failed as failed:
                error = failed.error
                if not isinstance(error, AppError):
                    raise error from None
                raise _naming(error, index + failed.index) from error
            results.extend(dict(task) for task in tasks)
            index += len(run)
            continue
        try:
            results.append(await _apply(tx, user_id, operations[index], versions[index]))
        except AppError as error:
            raise _naming(error, index) from error
        index += 1
    return results


def _update_run(operations: Sequence[Operation], start: int) -> list[UpdateOperation]:
    """The update operations from `start` on, up to the next other kind or the next one on
    a task already in the run: one statement can apply them (task_operations.update_many)."""
    run: list[UpdateOperation] = []
    seen: set[Any] = set()
    for operation in operations[start:]:
        if not isinstance(operation, UpdateOperation) or operation.id in seen:
            break
        seen.add(operation.id)
        run.append(operation)
    return run


async def _apply(
    tx: Transaction, user_id: str, operation: Operation, versions: Collection[int] | None
) -> dict[str, Any]:
    match operation:
        case CreateOperation():
            task = await task_operations.create(tx, user_id, operation.task)
        case UpdateOperation():
            task = await task_operations.update(
                tx, user_id, operation.id, operation.changes, versions=versions
            )
        case CompleteOperation():
            task = await task_operations.set_completed(
                tx, user_id, operation.id, operation.is_completed, versions=versions
            )
        case MoveOperation():
            task = await task_operations.move(
                tx, user_id, operation.id, operation.after, versions=versions
            )
        case DeleteOperation():
            await task_operations.delete(tx, user_id, operation.id, versions=versions)
            return {"id": operation.id, "deleted": True}
    return dict(task)


def _naming(error: AppError, index: int) -> AppError:
    """The operation's error as its single request would give it, naming the operation."""
    where = f"operations[{index}]"
    if isinstance(error, ValidationFailed):
        details = [
            {**detail, "field": f"{where}.{detail['field']}"} for detail in error.details or []
        ]
        return ValidationFailed(details, error.message)
    if isinstance(error, NotFound | PreconditionFailed):
        return type(error)(details=[{"field": where, "message": error.message}])
    return error
