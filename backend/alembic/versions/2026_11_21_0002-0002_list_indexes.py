"""indexes of the task list: one per sort, and counts without heap visits

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRIORITIES = ("high", "medium", "low")


def upgrade() -> None:
    # Each index spells its sort's ORDER BY exactly, so a page is one short range scan; the
    # plans behind every choice are in specs/list-query-plans.md. Under row-level security
    # only leakproof comparisons (timestamptz, uuid, text, bool) can bound an index scan, so
    # the keyset predicates stick to those, and the priority enum gets partial indexes.
    op.create_index(
        "ix_tasks_user_updated",
        "tasks",
        ["user_id", sa.text("updated_at DESC"), sa.text("id DESC")],
        # `total` counts the status, priority, tag and date filters from this index alone.
        postgresql_include=["is_completed", "priority", "due_at", "tags"],
    )
    # NULLS LAST (the default): dated tasks by due_at, then the undated ones, both by id.
    op.create_index("ix_tasks_user_due", "tasks", ["user_id", "due_at", "id"])
    for priority in PRIORITIES:
        op.create_index(
            f"ix_tasks_user_priority_{priority}",
            "tasks",
            ["user_id", "id"],
            postgresql_where=sa.text(f"priority = '{priority}'"),
        )
    op.create_index("ix_tasks_user_title", "tasks", ["user_id", sa.text("lower(title)"), "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_user_title", table_name="tasks")
    for priority in PRIORITIES:
        op.drop_index(f"ix_tasks_user_priority_{priority}", table_name="tasks")
    op.drop_index("ix_tasks_user_due", table_name="tasks")
    op.drop_index("ix_tasks_user_updated", table_name="tasks")
