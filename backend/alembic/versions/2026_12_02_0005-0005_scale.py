"""scale: a request costs the same at 100,000 tasks per user (issue 14)

What the list and /stats read instead of counting or filtering a user's every task, each
usable under row-level security (only leakproof operators bound an index scan there;
specs/list-query-plans.md, "Scale"):

- `task_tag_counts (user_id, tag, open, done)`: how many pending and completed tasks carry
  each tag, for `total` of a `tag=` list.
- `task_due_counts (user_id, due_day, open)`: pending dated tasks per UTC due day, so that
  /stats' overdue is a sum over past days plus today's overdue tasks, read from the partial
  index `ix_tasks_user_open_due (user_id, due_at) WHERE NOT is_completed`.
- `tasks.title_key = lower(title)`, set by a BEFORE ROW trigger, indexed with the user and
  id: a `sort=title` cursor page becomes an index range (text comparison is leakproof;
  `lower()` is not, so the old `lower(title)` index could order pages but not start one).

Both tables are moved by AFTER STATEMENT triggers from the statement's transition tables,
in the write's own transaction, serialized per user by migration 0004's user lock: exact
under concurrency, rolled back with their write.

On existing data: the tables, functions and triggers first, then a batch of users per short
transaction (their locks first, as in 0004): title keys and both tables' counts from the
rows. The title key's backfill is an UPDATE, so 0004's triggers give those tasks a new sync
position: a client following the feed receives each task once more, unchanged. Then the
indexes CONCURRENTLY and NOT NULL proven by a validated CHECK (no scan under an exclusive
lock).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Users per backfill transaction, as in 0004.
BACKFILL_USERS = 200

_OPEN = "CASE WHEN is_completed THEN 0 ELSE n END"
_DONE = "CASE WHEN is_completed THEN n ELSE 0 END"


def _move_counts(rows: str) -> str:
    """Move both tables by `rows` (user_id, tags, is_completed, due_at, n: +1 or -1)."""
    return f"""
        INSERT INTO task_tag_counts AS c (user_id, tag, open, done)
            SELECT user_id, tag, sum({_OPEN}), sum({_DONE})
            FROM ({rows}) AS d,
                 -- Distinct: the API dedups tags, the table does not (a direct write may not).
                 LATERAL (SELECT DISTINCT tag FROM unnest(d.tags) AS tag) AS t
            GROUP BY user_id, tag
            HAVING sum({_OPEN}) <> 0 OR sum({_DONE}) <> 0
            ORDER BY user_id, tag
            ON CONFLICT (user_id, tag)
                DO UPDATE SET open = c.open + excluded.open, done = c.done + excluded.done;
        INSERT INTO task_due_counts AS c (user_id, due_day, open)
            SELECT user_id, (due_at AT TIME ZONE 'UTC')::date, sum(n)
            FROM ({rows}) AS d
            WHERE due_at IS NOT NULL AND NOT is_completed
            GROUP BY 1, 2
            HAVING sum(n) <> 0
            ORDER BY 1, 2
            ON CONFLICT (user_id, due_day) DO UPDATE SET open = c.open + excluded.open;
    """


_NEW = "SELECT user_id, tags, is_completed, due_at, 1::bigint AS n FROM new_rows"
_OLD = "SELECT user_id, tags, is_completed, due_at, -1::bigint AS n FROM old_rows"

FUNCTIONS = [
    """
    CREATE FUNCTION tasks_title_key() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        NEW.title_key := lower(NEW.title);
        RETURN NEW;
    END
    $$
    """,
    f"""
    CREATE FUNCTION tasks_count_tags_and_due_days() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {_move_counts(_NEW)}
        ELSIF TG_OP = 'UPDATE' THEN
            -- Most updates (a title, a priority, a move) change nothing counted here: one
            -- join of the two transition tables instead of two grouped upserts.
            IF EXISTS (
                SELECT FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
                WHERE (n.tags, n.is_completed, n.due_at)
                    IS DISTINCT FROM (o.tags, o.is_completed, o.due_at)
            ) THEN
                {_move_counts(f"{_NEW} UNION ALL {_OLD}")}
            END IF;
        ELSE
            {_move_counts(_OLD)}
        END IF;
        RETURN NULL;
    END
    $$
    """,
]

# Transition tables rule out a column list (UPDATE OF ...): every UPDATE runs it, and rows
# whose tags, state and due date did not change cancel out (HAVING ... <> 0).
TRIGGERS = [
    "CREATE TRIGGER tasks_title_key BEFORE INSERT OR UPDATE OF title ON tasks "
    "FOR EACH ROW EXECUTE FUNCTION tasks_title_key()",
    "CREATE TRIGGER tasks_counts_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_tags_and_due_days()",
    "CREATE TRIGGER tasks_counts_update AFTER UPDATE ON tasks "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_tags_and_due_days()",
    "CREATE TRIGGER tasks_counts_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_tags_and_due_days()",
]


def _isolate(table: str) -> None:
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO tasks_app")
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"""
        CREATE POLICY {table}_user_isolation ON {table} TO tasks_app
            USING (user_id = current_setting('app.user_id', true))
            WITH CHECK (user_id = current_setting('app.user_id', true))
        """
    )


def upgrade() -> None:
    op.create_table(
        "task_tag_counts",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("open", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("done", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("user_id", "tag", name=op.f("pk_task_tag_counts")),
    )
    op.create_table(
        "task_due_counts",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("due_day", sa.Date(), nullable=False),
        sa.Column("open", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("user_id", "due_day", name=op.f("pk_task_due_counts")),
    )
    _isolate("task_tag_counts")
    _isolate("task_due_counts")
    op.add_column("tasks", sa.Column("title_key", sa.Text(), nullable=True))  # no rewrite
    for statement in (*FUNCTIONS, *TRIGGERS):
        op.execute(statement)

    with op.get_context().autocommit_block():
        _backfill()
        op.execute("ALTER TABLE task_tag_counts FORCE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE task_due_counts FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_tasks_user_open_due "
            "ON tasks (user_id, due_at) WHERE NOT is_completed"
        )
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_tasks_user_title_key "
            "ON tasks (user_id, title_key, id)"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_tasks_user_title")
        op.execute(
            "ALTER TABLE tasks ADD CONSTRAINT ck_tasks_title_key_set "
            "CHECK (title_key IS NOT NULL) NOT VALID"
        )
        op.execute("ALTER TABLE tasks VALIDATE CONSTRAINT ck_tasks_title_key_set")
        op.execute("ALTER TABLE tasks ALTER COLUMN title_key SET NOT NULL")
        op.execute("ALTER TABLE tasks DROP CONSTRAINT ck_tasks_title_key_set")


def _backfill() -> None:
    """Title keys and both tables' counts for the tasks that exist, a batch of users at a
    time, each batch holding its users' locks (0004's task_sync rows): a write of theirs
    waits, and one that came before the batch is recounted from the rows by it."""
    bind = op.get_bind()
    # As in 0004: the owner is held to row-level security (FORCE) and no policy names it.
    bind.execute(sa.text("ALTER TABLE tasks NO FORCE ROW LEVEL SECURITY"))
    bind.execute(sa.text("ALTER TABLE task_sync NO FORCE ROW LEVEL SECURITY"))
    try:
        users = [row[0] for row in bind.execute(sa.text("SELECT DISTINCT user_id FROM tasks"))]
        for start in range(0, len(users), BACKFILL_USERS):
            # In the autocommit block SQLAlchemy sends no BEGIN of its own.
            bind.exec_driver_sql("BEGIN")
            try:
                _backfill_users(bind, users[start : start + BACKFILL_USERS])
            except BaseException:
                bind.exec_driver_sql("ROLLBACK")
                raise
            bind.exec_driver_sql("COMMIT")
    finally:
        bind.execute(sa.text("ALTER TABLE task_sync FORCE ROW LEVEL SECURITY"))
        bind.execute(sa.text("ALTER TABLE tasks FORCE ROW LEVEL SECURITY"))


def _backfill_users(bind: sa.Connection, users: list[str]) -> None:
    param = sa.bindparam("users", users, type_=sa.ARRAY(sa.Text()))
    for statement in (
        "SELECT task_sync_lock(u) FROM unnest(CAST(:users AS text[])) AS u ORDER BY u",
        "UPDATE tasks SET title_key = lower(title) "
        "WHERE user_id = ANY(:users) AND title_key IS NULL",
        # Recounted under the locks: whatever the triggers did before is replaced.
        "DELETE FROM task_tag_counts WHERE user_id = ANY(:users)",
        "DELETE FROM task_due_counts WHERE user_id = ANY(:users)",
    ):
        bind.execute(sa.text(statement).bindparams(param))
    everyone = "SELECT user_id, tags, is_completed, due_at, 1::bigint AS n FROM tasks"
    counted = _move_counts(f"{everyone} WHERE user_id = ANY(:users)")
    for statement in counted.split(";"):
        if statement.strip():
            bind.execute(sa.text(statement).bindparams(param))


def downgrade() -> None:
    for trigger in (
        "tasks_counts_delete",
        "tasks_counts_update",
        "tasks_counts_insert",
        "tasks_title_key",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON tasks")
    op.execute("DROP FUNCTION IF EXISTS tasks_count_tags_and_due_days()")
    op.execute("DROP FUNCTION IF EXISTS tasks_title_key()")
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_tasks_user_title "
            "ON tasks (user_id, lower(title), id)"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_tasks_user_title_key")
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_tasks_user_open_due")
    op.drop_column("tasks", "title_key")
    for table in ("task_due_counts", "task_tag_counts"):
        op.execute(f"DROP POLICY IF EXISTS {table}_user_isolation ON {table}")
        op.drop_table(table)
