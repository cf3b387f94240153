"""create tasks, the application role and row-level security

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

priority = postgresql.ENUM("low", "medium", "high", name="task_priority", create_type=False)


def upgrade() -> None:
    priority.create(op.get_bind())
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("priority", priority, server_default="medium", nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("is_completed", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "char_length(user_id) BETWEEN 1 AND 255", name=op.f("ck_tasks_user_id_length")
        ),
        sa.CheckConstraint(
            "char_length(title) BETWEEN 1 AND 500", name=op.f("ck_tasks_title_length")
        ),
        sa.CheckConstraint("btrim(title) <> ''", name=op.f("ck_tasks_title_not_blank")),
        sa.CheckConstraint(
            "description IS NULL OR char_length(description) <= 10000",
            name=op.f("ck_tasks_description_length"),
        ),
        sa.CheckConstraint("cardinality(tags) <= 20", name=op.f("ck_tasks_tags_count")),
        sa.CheckConstraint(
            "is_completed = (completed_at IS NOT NULL)",
            name=op.f("ck_tasks_completed_at_iff_completed"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_tasks_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index(
        "ix_tasks_user_created",
        "tasks",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )

    # The API connects as the database owner (Neon's owner role has CREATEROLE, not
    # SUPERUSER) and switches to tasks_app in every transaction. tasks_app cannot log in,
    # has no BYPASSRLS, and may only touch rows of the user set for the transaction.
    op.execute(
        """
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'tasks_app') THEN
                CREATE ROLE tasks_app NOLOGIN NOINHERIT NOBYPASSRLS;
            END IF;
        END
        $$
        """
    )
    op.execute("GRANT tasks_app TO CURRENT_USER")
    op.execute("GRANT USAGE ON SCHEMA public TO tasks_app")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON tasks TO tasks_app")
    op.execute("ALTER TABLE tasks ENABLE ROW LEVEL SECURITY")
    # FORCE: the owner is held to the policies too, so only tasks_app ever sees rows.
    op.execute("ALTER TABLE tasks FORCE ROW LEVEL SECURITY")
    op.execute(
        """
        CREATE POLICY tasks_user_isolation ON tasks TO tasks_app
            USING (user_id = current_setting('app.user_id', true))
            WITH CHECK (user_id = current_setting('app.user_id', true))
        """
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS tasks_user_isolation ON tasks")
    op.drop_index("ix_tasks_user_created", table_name="tasks")
    op.drop_table("tasks")
    priority.drop(op.get_bind())
    op.execute("REVOKE USAGE ON SCHEMA public FROM tasks_app")
    # Roles belong to the cluster: keep tasks_app while another database still uses it.
    op.execute(
        """
        DO $$
        BEGIN
            DROP ROLE IF EXISTS tasks_app;
        EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege THEN
            RAISE NOTICE 'role tasks_app is still in use elsewhere; kept';
        END
        $$
        """
    )
