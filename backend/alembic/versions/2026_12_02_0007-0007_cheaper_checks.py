"""the CHECK constraints every write runs: the same rules, less work

PostgreSQL reads and compiles a table's CHECK constraints for every statement that writes
it (from their stored node trees, ~30,000 instructions each) and evaluates them on every
row. A write of a task pays that for `tasks` and, through the sync trigger's upsert, for
`task_sync`. Two of them cost more than their rule needs (specs/performance.md, "The write
path's cost"):

- `ck_tasks_position_format`, `position ~ '^[0-9A-Za-z]{1,128}$'`: PostgreSQL's regular
  expression engine runs a bounded repetition as an automaton of 128 states, ~6.5 us per
  row; `^[0-9A-Za-z]+$` with the length compared beside it accepts exactly the same strings
  (one to 128 ASCII letters and digits) in ~0.3 us. Most of a 10-million-row load's CPU.
- `ck_task_sync_user_id_length` checks a user id that only the triggers on `tasks` write,
  copied from a task whose own `ck_tasks_user_id_length` holds: dropped (~3% of the
  server's work for a one-task write, measured with callgrind).

On existing data without a long lock: the new position constraint is added NOT VALID (a
moment's ACCESS EXCLUSIVE lock, no scan) and validated under SHARE UPDATE EXCLUSIVE (writes
go on during the scan); then the old one is dropped (the new one already holds the rule)
and the new one takes its name. The downgrade puts both back the same way.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSITION = "ck_tasks_position_format"
# The two spellings of one rule; the API's models.task holds the current one.
CHEAP = "position ~ '^[0-9A-Za-z]+$' AND char_length(position) <= 128"
COUNTED = "position ~ '^[0-9A-Za-z]{1,128}$'"
SYNC_USER = "ck_task_sync_user_id_length"


def _add_validated(table: str, name: str, check: str) -> None:
    """Add a CHECK without holding an exclusive lock through the scan (autocommit block)."""
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({check}) NOT VALID")
    op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def _replace_position(check: str) -> None:
    # Once the new constraint is validated it holds the rule on its own: dropping the old
    # one and renaming need no transaction around them.
    _add_validated("tasks", f"{POSITION}_next", check)
    op.execute(f"ALTER TABLE tasks DROP CONSTRAINT {POSITION}")
    op.execute(f"ALTER TABLE tasks RENAME CONSTRAINT {POSITION}_next TO {POSITION}")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        _replace_position(CHEAP)
        op.execute(f"ALTER TABLE task_sync DROP CONSTRAINT IF EXISTS {SYNC_USER}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _add_validated("task_sync", SYNC_USER, "char_length(user_id) BETWEEN 1 AND 255")
        _replace_position(COUNTED)
