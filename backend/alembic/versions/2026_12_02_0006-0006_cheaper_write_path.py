"""the write path's bookkeeping at half the cost, linear in the rows a statement writes

The same triggers as migration 0004 (specs/sync.md, "One write path"), with new bodies, and
migration 0005's four triggers folded into them: every statement that writes `tasks` still
runs all of its bookkeeping, in fewer and cheaper steps (specs/performance.md, "The write
path's cost"):

- The user's write lock is a transaction-scoped advisory lock (`task_sync_lock`), taken
  BEFORE each statement as before: it orders a user's writes exactly as the `task_sync` row
  lock did, without writing a row version, WAL or a dirty page for it.
- BEFORE each row: the sync position, the title key (0005's trigger) and a new task's first
  position, as before.
- AFTER each statement, one trigger per event (0005's count triggers folded in): the
  counters, the user's position and the listeners as before; tag and due-day counts only
  when the statement changed what they count (the multiset of tags, state and due dates),
  which an update of a title, a priority or a position does not. 0005's test for that
  joined the two transition tables, which the planner ran as a nested loop: minutes for a
  statement of tens of thousands of rows (a rebalance); EXCEPT ALL hashes instead.

Per-row triggers that write `task_sync` were measured and rejected: one UPDATE of the same
row per task is a HOT chain the statement walks again for every row (10 s for 25,000 rows).

The switch is atomic for writers: the functions are replaced under a SHARE ROW EXCLUSIVE
lock on `tasks`, so no write runs half under the old lock and half under the new one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from types import ModuleType

from alembic import context, op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTERS = ("open_low", "open_medium", "open_high", "done_low", "done_medium", "done_high")

# The advisory lock's first key, 'task' in ASCII: the user's lock is (LOCK_CLASS,
# hashtext(user_id)). Two users sharing a hash only share a lock; the one-bigint key space
# of the idempotency keys' locks is a different one.
LOCK_CLASS = 0x7461736B


def _record(rows: str) -> str:
    """One statement: move the users' counters by `rows` (user_id, is_completed, priority,
    n = +1 or -1), record their position, notify those an API instance streams to."""
    names = ", ".join(_COUNTERS)
    sums = ", ".join(
        f"coalesce(sum(n) FILTER (WHERE {'' if name.startswith('done') else 'NOT '}is_completed"
        f" AND priority = '{name.split('_')[1]}'), 0)"
        for name in _COUNTERS
    )
    moved = ", ".join(f"{name} = s.{name} + excluded.{name}" for name in _COUNTERS)
    return f"""
            WITH recorded AS (
                INSERT INTO task_sync AS s (user_id, seq, {names})
                    SELECT user_id, currval('task_change_seq'), {sums}
                    FROM ({rows}) AS d GROUP BY user_id
                ON CONFLICT (user_id) DO UPDATE SET {moved},
                    seq = greatest(s.seq, excluded.seq)
                RETURNING s.user_id)
            SELECT count(pg_notify('task_changes', r.user_id)) INTO notified FROM recorded AS r
                WHERE EXISTS (SELECT FROM task_listeners AS l WHERE l.user_id = r.user_id);"""


def _previous(revision: str) -> ModuleType:
    # An earlier revision's own code (through alembic, which loaded it): 0005's count SQL for
    # the upgrade, 0004's and 0005's definitions for the downgrade, with no second copy here.
    return context.script.get_revision(revision).module


def _rows(table: str, n: int) -> str:
    return f"SELECT user_id, tags, is_completed, priority, due_at, {n} AS n FROM {table}"


_NEW = _rows("new_rows", 1)
_OLD = _rows("old_rows", -1)
# Rows a statement inserts or deletes that tag or due-day counts see.
_COUNTED = "tags <> '{}' OR (due_at IS NOT NULL AND NOT is_completed)"


def _functions() -> list[str]:
    move_counts = _previous("0005")._move_counts
    return [
        f"""
    CREATE OR REPLACE FUNCTION task_sync_lock(u text) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({LOCK_CLASS}, hashtext(u));
    END
    $$
    """,
        f"""
    CREATE OR REPLACE FUNCTION tasks_lock_user() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        u text := current_setting('app.user_id', true);
    BEGIN
        -- The API always sets the user; a maintenance session (migrations) locks by itself.
        IF u <> '' THEN
            -- task_sync_lock(u), inline: a call less on every write statement.
            PERFORM pg_advisory_xact_lock({LOCK_CLASS}, hashtext(u));
        END IF;
        RETURN NULL;
    END
    $$
    """,
        """
    CREATE OR REPLACE FUNCTION tasks_before_write() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            NEW.title_key := lower(NEW.title);
            IF NEW.position IS NULL THEN
                -- Runs after the statement's lock: it sees every committed task of the user.
                NEW.position := tasks_key_before(
                    (SELECT min(position) FROM tasks WHERE user_id = NEW.user_id));
            END IF;
        ELSIF NEW.title IS DISTINCT FROM OLD.title THEN
            NEW.title_key := lower(NEW.title);
        END IF;
        NEW.sync_seq := nextval('task_change_seq');
        RETURN NEW;
    END
    $$
    """,
        f"""
    CREATE OR REPLACE FUNCTION tasks_after_write() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        retention interval;
        u text;
        notified bigint;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {_record(_NEW)}
            IF EXISTS (SELECT FROM new_rows WHERE {_COUNTED}) THEN
                {move_counts(_NEW)}
            END IF;
        ELSIF TG_OP = 'UPDATE' THEN
            {_record(f"{_NEW} UNION ALL {_OLD}")}
            -- The counts are a function of this multiset, so they move only if it changed.
            IF EXISTS (
                SELECT user_id, tags, is_completed, due_at FROM new_rows
                EXCEPT ALL
                SELECT user_id, tags, is_completed, due_at FROM old_rows
            ) THEN
                {move_counts(f"{_NEW} UNION ALL {_OLD}")}
            END IF;
        ELSE
            INSERT INTO task_tombstones (user_id, task_id, seq)
                SELECT user_id, id, nextval('task_change_seq') FROM old_rows ORDER BY id;
            {_record(_OLD)}
            IF EXISTS (SELECT FROM old_rows WHERE {_COUNTED}) THEN
                {move_counts(_OLD)}
            END IF;
            retention := make_interval(days => coalesce(
                nullif(current_setting('app.sync_retention_days', true), ''), '30')::int);
            FOR u IN SELECT DISTINCT user_id FROM old_rows LOOP
                WITH purged AS (
                    DELETE FROM task_tombstones WHERE ctid IN (
                        SELECT ctid FROM task_tombstones
                        WHERE user_id = u AND deleted_at < now() - retention LIMIT 1000)
                    RETURNING seq)
                UPDATE task_sync SET purged_seq = greatest(purged_seq, p.seq)
                    FROM (SELECT max(seq) AS seq FROM purged) AS p
                    WHERE user_id = u AND p.seq IS NOT NULL;
            END LOOP;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    ]


# Migration 0005's, now done by 0004's triggers with the bodies above.
FOLDED_TRIGGERS = (
    "tasks_counts_delete",
    "tasks_counts_update",
    "tasks_counts_insert",
    "tasks_title_key",
)
FOLDED_FUNCTIONS = ("tasks_count_tags_and_due_days()", "tasks_title_key()")


def _lock_writers() -> None:
    # Writes in flight finish first and new ones wait for the commit: none runs with one
    # lock in its BEFORE trigger and the other's bookkeeping after. Reads go on.
    op.execute("LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE")


def upgrade() -> None:
    _lock_writers()
    for trigger in FOLDED_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON tasks")
    for function in FOLDED_FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    for statement in _functions():
        op.execute(statement)


def downgrade() -> None:
    _lock_writers()
    sync_and_order, scale = _previous("0004"), _previous("0005")
    replaced = ("task_sync_lock", "tasks_lock_user", "tasks_before_write", "tasks_after_write")
    for statement in sync_and_order.FUNCTIONS:
        if any(f"CREATE FUNCTION {name}(" in statement for name in replaced):
            op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    for statement in (*scale.FUNCTIONS, *scale.TRIGGERS):
        op.execute(statement)
