"""idempotency keys of POST /tasks, under the same row-level security as tasks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(), nullable=False),
        sa.Column("task", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "char_length(user_id) BETWEEN 1 AND 255",
            name=op.f("ck_idempotency_keys_user_id_length"),
        ),
        sa.CheckConstraint(
            "char_length(key) BETWEEN 1 AND 255", name=op.f("ck_idempotency_keys_key_length")
        ),
        sa.CheckConstraint(
            "octet_length(request_hash) = 32",
            name=op.f("ck_idempotency_keys_request_hash_sha256"),
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "ix_idempotency_keys_user_created", "idempotency_keys", ["user_id", "created_at"]
    )

    # As for tasks (0001): tasks_app reaches only the rows of the transaction's user, and
    # FORCE holds the owner to the policy too. So the purge of expired keys can only ever
    # be per user, inside that user's own keyed create (specs/idempotency.md).
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO tasks_app")
    op.execute("ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY")
    op.execute(
        """
        CREATE POLICY idempotency_keys_user_isolation ON idempotency_keys TO tasks_app
            USING (user_id = current_setting('app.user_id', true))
            WITH CHECK (user_id = current_setting('app.user_id', true))
        """
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS idempotency_keys_user_isolation ON idempotency_keys")
    op.drop_index("ix_idempotency_keys_user_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
