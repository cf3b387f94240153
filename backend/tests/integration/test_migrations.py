"""Migrations on a fresh database: up, down, up again, and in step with the models."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from tasks_api.cli import BACKEND_DIR
from tasks_api.database_url import to_asyncpg
from tasks_api.models import SQLModel
from tests.support.database import TestCluster as Cluster
from tests.support.database import alembic

SCRIPTS = ScriptDirectory.from_config(Config(str(BACKEND_DIR / "alembic.ini")))
HEAD = SCRIPTS.get_current_head()
# Oldest first.
REVISIONS = [script.revision for script in reversed(list(SCRIPTS.walk_revisions()))]


@pytest.fixture
async def fresh_url(cluster: Cluster, database_url: str) -> AsyncIterator[str]:
    """An empty database of its own; `database_url` keeps the shared one (and its role) alive."""
    await cluster.ensure_owner_role()
    name = await cluster.create_database("tasks_migrations")
    yield cluster.owner_url(name)
    await cluster.drop_database(name)


async def _tables(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        return {row["tablename"] for row in rows}
    finally:
        await connection.close()


async def _version(url: str) -> str | None:
    connection = await asyncpg.connect(url)
    try:
        exists = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not exists:
            return None
        return await connection.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await connection.close()


async def _types(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'public' AND t.typtype = 'e'"
        )
        return {row["typname"] for row in rows}
    finally:
        await connection.close()


async def _diff(url: str) -> list[Any]:
    asyncpg_url, connect_args = to_asyncpg(url)
    engine = create_async_engine(asyncpg_url, poolclass=pool.NullPool, connect_args=connect_args)

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, SQLModel.metadata)

    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


class TestMigrations:
    async def test_upgrade_downgrade_upgrade(self, fresh_url: str) -> None:
        assert await _tables(fresh_url) == set()

        await alembic(fresh_url, "upgrade", "head")
        assert await _version(fresh_url) == HEAD
        assert "tasks" in await _tables(fresh_url)
        assert "task_priority" in await _types(fresh_url)

        await alembic(fresh_url, "downgrade", "base")
        assert await _version(fresh_url) is None
        assert await _tables(fresh_url) == set()
        assert await _types(fresh_url) == set()

        await alembic(fresh_url, "upgrade", "head")
        assert await _version(fresh_url) == HEAD
        assert "tasks" in await _tables(fresh_url)

    async def test_each_step_reverses(self, fresh_url: str) -> None:
        """Every revision's downgrade undoes its upgrade, so a bad deploy can step back."""
        for revision in REVISIONS:
            await alembic(fresh_url, "upgrade", revision)
            assert await _version(fresh_url) == revision
        after_all = await _diff(fresh_url)
        for revision in reversed(REVISIONS[:-1]):
            await alembic(fresh_url, "downgrade", "-1")
            assert await _version(fresh_url) == revision
        await alembic(fresh_url, "downgrade", "-1")
        assert await _tables(fresh_url) == set()
        await alembic(fresh_url, "upgrade", "head")
        assert await _diff(fresh_url) == after_all

    async def test_models_match_migrations(self, fresh_url: str) -> None:
        await alembic(fresh_url, "upgrade", "head")
        diff = await _diff(fresh_url)
        assert diff == [], (
            "the models and the migrations disagree; autogenerate a migration "
            f"(alembic revision --autogenerate) and review it:\n{diff}"
        )

    async def test_plain_alembic_with_only_database_url(self, fresh_url: str) -> None:
        """The operator's path: `DATABASE_URL=... alembic upgrade head` from backend/."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "alembic",
            "upgrade",
            "head",
            cwd=BACKEND_DIR,
            env={"DATABASE_URL": fresh_url, "PATH": os.defpath},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        assert process.returncode == 0, output.decode()
        assert await _version(fresh_url) == HEAD
        assert "tasks" in await _tables(fresh_url)


class TestSyncAndOrderOnData:
    """0004 on a database that already holds tasks: positions and counts backfilled."""

    async def test_backfill_then_downgrade(self, fresh_url: str) -> None:
        await alembic(fresh_url, "upgrade", "0003")
        connection = await asyncpg.connect(fresh_url)
        users = [f"user-{i}" for i in range(5)]
        try:
            for n, user in enumerate(users):
                async with connection.transaction():
                    await connection.execute(
                        "SELECT set_config('role', 'tasks_app', true), "
                        "set_config('app.user_id', $1, true)",
                        user,
                    )
                    await connection.execute(
                        "INSERT INTO tasks (id, user_id, title, priority, is_completed,"
                        " completed_at, created_at)"
                        " SELECT gen_random_uuid(), $1, 't' || i,"
                        " (ARRAY['low','medium','high'])[i % 3 + 1]::task_priority,"
                        " i % 4 = 0, CASE WHEN i % 4 = 0 THEN now() END,"
                        " now() - make_interval(mins => i)"
                        " FROM generate_series(1, $2) AS i",
                        user,
                        50 * (n + 1),
                    )
        finally:
            await connection.close()

        await alembic(fresh_url, "upgrade", "head")
        connection = await asyncpg.connect(fresh_url)
        try:
            for n, user in enumerate(users):
                async with connection.transaction():
                    await connection.execute(
                        "SELECT set_config('role', 'tasks_app', true), "
                        "set_config('app.user_id', $1, true)",
                        user,
                    )
                    by_position = await connection.fetch(
                        "SELECT title FROM tasks ORDER BY position"
                    )
                    by_created = await connection.fetch(
                        "SELECT title FROM tasks ORDER BY created_at DESC, id DESC"
                    )
                    # The manual order starts as the default list order: newest first.
                    assert by_position == by_created
                    assert len(by_position) == 50 * (n + 1)
                    counts = await connection.fetchrow(
                        "SELECT open_low + open_medium + open_high AS open,"
                        " done_low + done_medium + done_high AS done,"
                        " open_high + done_high AS high FROM task_sync"
                    )
                    real = await connection.fetchrow(
                        "SELECT count(*) FILTER (WHERE NOT is_completed) AS open,"
                        " count(*) FILTER (WHERE is_completed) AS done,"
                        " count(*) FILTER (WHERE priority = 'high') AS high FROM tasks"
                    )
                    assert dict(counts) == dict(real)
                    # A new task goes before the backfilled ones.
                    backfilled_first = await connection.fetchval("SELECT min(position) FROM tasks")
                    first = await connection.fetchval(
                        "INSERT INTO tasks (id, user_id, title) VALUES (gen_random_uuid(), $1,"
                        " 'new') RETURNING position",
                        user,
                    )
                    assert first < backfilled_first
            nullable = await connection.fetchval(
                "SELECT is_nullable FROM information_schema.columns"
                " WHERE table_name = 'tasks' AND column_name = 'position'"
            )
            assert nullable == "NO"
        finally:
            await connection.close()

        await alembic(fresh_url, "downgrade", "0003")
        assert await _version(fresh_url) == "0003"
        assert {"task_sync", "task_tombstones"}.isdisjoint(await _tables(fresh_url))
