"""Migration 0005 (scale, issue 14) on a database that already holds tasks: title keys and
the tag and due-day counts backfilled from the rows, then its downgrade."""

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.integration.test_migrations import SCRIPTS, _tables, _version, fresh_url
from tests.support.database import alembic

__all__ = ["fresh_url"]  # the fixture, used by name

pytestmark = pytest.mark.asyncio

SCALE = "0005"
BEFORE = SCRIPTS.get_revision(SCALE).down_revision
TAGS = ["home", "work", "Home", "errand"]


async def _as(connection: asyncpg.Connection, user: str) -> None:
    await connection.execute(
        "SELECT set_config('role', 'tasks_app', true), set_config('app.user_id', $1, true)", user
    )


async def _indexes(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'")
        return {row[0] for row in rows}
    finally:
        await connection.close()


class TestScaleOnData:
    async def test_backfill_then_downgrade(self, fresh_url: str) -> None:
        assert isinstance(BEFORE, str)
        await alembic(fresh_url, "upgrade", BEFORE)
        users = [f"user-{i}" for i in range(4)]
        now = datetime.now(UTC)
        connection = await asyncpg.connect(fresh_url)
        try:
            for n, user in enumerate(users):
                async with connection.transaction():
                    await _as(connection, user)
                    await connection.execute(
                        "INSERT INTO tasks (id, user_id, title, tags, due_at, is_completed,"
                        " completed_at)"
                        " SELECT gen_random_uuid(), $1, (ARRAY['Buy MILK', 'écrire', 'Zed'])"
                        "[i % 3 + 1] || ' ' || i, ($2::text[])[1:i % 4],"
                        " CASE WHEN i % 5 > 0 THEN $3::timestamptz"
                        " - make_interval(hours => i * 7) END,"
                        " i % 4 = 0, CASE WHEN i % 4 = 0 THEN now() END"
                        " FROM generate_series(1, $4) AS i",
                        user,
                        TAGS,
                        now + timedelta(days=3),
                        40 * (n + 1),
                    )
        finally:
            await connection.close()

        await alembic(fresh_url, "upgrade", SCALE)
        connection = await asyncpg.connect(fresh_url)
        try:
            for user in users:
                async with connection.transaction():
                    await _as(connection, user)
                    assert (
                        await connection.fetchval(
                            "SELECT count(*) FROM tasks"
                            " WHERE title_key IS DISTINCT FROM lower(title)"
                        )
                        == 0
                    )
                    tags = await connection.fetch(
                        "SELECT tag, open, done FROM task_tag_counts ORDER BY tag"
                    )
                    real_tags = await connection.fetch(
                        "SELECT tag, count(*) FILTER (WHERE NOT is_completed) AS open,"
                        " count(*) FILTER (WHERE is_completed) AS done"
                        " FROM tasks, unnest(tags) AS tag GROUP BY tag ORDER BY tag"
                    )
                    assert [tuple(r) for r in tags] == [tuple(r) for r in real_tags]
                    assert len(tags) == 3
                    days = await connection.fetch(
                        "SELECT due_day, open FROM task_due_counts ORDER BY due_day"
                    )
                    real_days = await connection.fetch(
                        "SELECT (due_at AT TIME ZONE 'UTC')::date, count(*) FROM tasks"
                        " WHERE NOT is_completed AND due_at IS NOT NULL GROUP BY 1 ORDER BY 1"
                    )
                    assert [tuple(r) for r in days] == [tuple(r) for r in real_days]
                    assert len(days) > 3
                    # New and renamed tasks get their key from the trigger.
                    key = await connection.fetchval(
                        "INSERT INTO tasks (id, user_id, title, tags) VALUES"
                        " (gen_random_uuid(), $1, 'NEW Task', '{home}') RETURNING title_key",
                        user,
                    )
                    assert key == "new task"
                    key = await connection.fetchval(
                        "UPDATE tasks SET title = 'ÉTÉ' WHERE title = 'NEW Task'"
                        " RETURNING title_key"
                    )
                    assert key == "été"
            nullable = await connection.fetchval(
                "SELECT is_nullable FROM information_schema.columns"
                " WHERE table_name = 'tasks' AND column_name = 'title_key'"
            )
            assert nullable == "NO"
            forced = await connection.fetch(
                "SELECT relforcerowsecurity FROM pg_class"
                " WHERE relname IN ('task_tag_counts', 'task_due_counts', 'tasks', 'task_sync')"
            )
            assert [row[0] for row in forced] == [True] * 4
        finally:
            await connection.close()
        indexes = await _indexes(fresh_url)
        assert {"ix_tasks_user_title_key", "ix_tasks_user_open_due"} <= indexes
        assert "ix_tasks_user_title" not in indexes

        await alembic(fresh_url, "downgrade", BEFORE)
        assert await _version(fresh_url) == BEFORE
        assert {"task_tag_counts", "task_due_counts"}.isdisjoint(await _tables(fresh_url))
        indexes = await _indexes(fresh_url)
        assert "ix_tasks_user_title" in indexes
        assert not {"ix_tasks_user_title_key", "ix_tasks_user_open_due"} & indexes
