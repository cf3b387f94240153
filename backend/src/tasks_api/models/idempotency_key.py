from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CheckConstraint, Column, DateTime, Index, LargeBinary, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

KEY_MAX = 255
# The contract promises at least 24 hours; a key is purged or reused only after this.
KEY_RETENTION = timedelta(hours=24)


class IdempotencyKey(SQLModel, table=True):
    """A finished keyed create: the body's hash and the task as the first 201 returned it.

    Written in the same statement as its task, so a key row exists iff its task was created
    (see specs/idempotency.md); there is no "in progress" row for a crash to leave behind.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        CheckConstraint("char_length(user_id) BETWEEN 1 AND 255", name="user_id_length"),
        CheckConstraint(f"char_length(key) BETWEEN 1 AND {KEY_MAX}", name="key_length"),
        CheckConstraint("octet_length(request_hash) = 32", name="request_hash_sha256"),
        # The purge of a user's expired keys is a range scan, however many keys are live.
        Index("ix_idempotency_keys_user_created", "user_id", "created_at"),
    )

    # Scoped to the user by the key itself: another user's key can never conflict.
    user_id: str = Field(primary_key=True, sa_type=Text)
    key: str = Field(primary_key=True, sa_type=Text)
    request_hash: bytes = Field(sa_type=LargeBinary)
    task: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
