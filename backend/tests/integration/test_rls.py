"""Row-level security, proven in the database itself: no API code between us and the rows."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from uuid_utils.compat import uuid7

from tasks_api.config import Settings
from tasks_api.database import APP_ROLE, Database, Query
from tests.support.auth import User
from tests.support.database import OWNER_ROLE

CreateTask = Callable[..., Awaitable[dict[str, Any]]]


@asynccontextmanager
async def acting_as(
    db: asyncpg.Connection, user_id: str | None
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction as the application role, as the API opens one; always rolled back."""
    transaction = db.transaction()
    await transaction.start()
    try:
        await db.execute("SELECT set_config('role', $1, true)", APP_ROLE)
        if user_id is not None:
            await db.execute("SELECT set_config('app.user_id', $1, true)", user_id)
        yield db
    finally:
        await transaction.rollback()


async def _insert(db: asyncpg.Connection, user_id: str) -> str:
    return await db.execute(
        "INSERT INTO tasks (id, user_id, title) VALUES ($1, $2, 'planted')", uuid7(), user_id
    )


class TestApplicationRole:
    async def test_select_without_filter_returns_own_rows_only(
        self, db: asyncpg.Connection, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        mine = {(await create_task(alice))["id"] for _ in range(2)}
        await create_task(bob)
        async with acting_as(db, alice.id):
            rows = await db.fetch("SELECT id, user_id FROM tasks")
        assert {str(row["id"]) for row in rows} == mine
        assert {row["user_id"] for row in rows} == {alice.id}

    async def test_insert_for_another_user_is_refused(
        self, db: asyncpg.Connection, alice: User, bob: User
    ) -> None:
        async with acting_as(db, alice.id):
            assert await _insert(db, alice.id) == "INSERT 0 1"  # the row itself is fine
        async with acting_as(db, alice.id):
            with pytest.raises(
                asyncpg.InsufficientPrivilegeError, match="row-level security policy"
            ):
                await _insert(db, bob.id)

    async def test_update_of_another_users_rows_touches_nothing(
        self, db: asyncpg.Connection, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(bob, title="Bob's")
        async with acting_as(db, alice.id):
            assert await db.execute("UPDATE tasks SET title = 'pwned'") == "UPDATE 0"
            status = await db.execute("UPDATE tasks SET title = 'pwned' WHERE id = $1", task["id"])
            assert status == "UPDATE 0"
        async with acting_as(db, bob.id):
            assert await db.fetchval("SELECT title FROM tasks WHERE id = $1", task["id"]) == "Bob's"

    async def test_moving_own_row_to_another_user_is_refused(
        self, db: asyncpg.Connection, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        await create_task(alice)
        async with acting_as(db, alice.id):
            with pytest.raises(
                asyncpg.InsufficientPrivilegeError, match="row-level security policy"
            ):
                await db.execute("UPDATE tasks SET user_id = $1", bob.id)

    async def test_delete_of_another_users_rows_touches_nothing(
        self, db: asyncpg.Connection, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(bob)
        async with acting_as(db, alice.id):
            assert await db.execute("DELETE FROM tasks") == "DELETE 0"
        async with acting_as(db, bob.id):
            assert await db.fetchval("SELECT count(*) FROM tasks WHERE id = $1", task["id"]) == 1

    @pytest.mark.parametrize("user_id", [None, ""], ids=["unset", "empty"])
    async def test_without_a_user_sees_nothing(
        self, db: asyncpg.Connection, alice: User, create_task: CreateTask, user_id: str | None
    ) -> None:
        await create_task(alice)
        async with acting_as(db, user_id):
            assert await db.fetchval("SELECT count(*) FROM tasks") == 0
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await _insert(db, alice.id)

    async def test_setting_does_not_outlive_the_transaction(
        self, db: asyncpg.Connection, alice: User, create_task: CreateTask
    ) -> None:
        await create_task(alice)
        async with acting_as(db, alice.id):
            assert await db.fetchval("SELECT count(*) FROM tasks") == 1
        # The same connection, back in the pool: neither the role nor the user remains.
        assert await db.fetchval("SELECT current_user") == OWNER_ROLE
        async with db.transaction():
            await db.execute("SELECT set_config('role', $1, true)", APP_ROLE)
            assert await db.fetchval("SELECT count(*) FROM tasks") == 0

    async def test_api_sessions_run_as_the_application_role(self, app: FastAPI) -> None:
        database: Database = app.state.database
        transaction = database.transaction("someone")
        row = await transaction.fetchrow(_WHO_AM_I)
        await transaction.commit()
        assert row is not None
        assert tuple(row)[:2] == (APP_ROLE, "someone")

    @pytest.mark.parametrize(
        "user_id",
        [
            "o'brien",
            "back\\slash\\'",
            "'); DROP TABLE tasks; --",
            "E'x'",
            "$$dollar$$",
            "line\nbreak\ttab",
            "ünïcødé 🚀",
            "x" * 255,
        ],
    )
    async def test_any_user_id_reaches_the_database_exactly(
        self, app: FastAPI, user_id: str
    ) -> None:
        """The user is sent as a quoted literal (the BEGIN round trip uses the simple
        protocol): quotes, backslashes and SQL in an id must arrive as the same text."""
        transaction = app.state.database.transaction(user_id)
        row = await transaction.fetchrow(_WHO_AM_I)
        await transaction.commit()
        assert row is not None
        assert tuple(row)[:2] == (APP_ROLE, user_id)

    async def test_nothing_outlives_the_transaction(self, app: FastAPI) -> None:
        database: Database = app.state.database
        transaction = database.transaction("someone")
        inside = await transaction.fetchrow(_WHO_AM_I)
        await transaction.commit()
        # The connection just given back is the one the pool hands out next.
        entry = await database.engine.raw_connection()
        try:
            after = await entry.driver_connection.fetchrow(_WHO_AM_I.sql, *_WHO_AM_I.args({}))
        finally:
            entry.close()
        assert inside is not None
        assert after is not None
        assert after[2] == inside[2], "not the same connection: the test proves nothing"
        assert after[0] != APP_ROLE
        assert after[1] in (None, "")

    async def test_each_transaction_carries_its_timeout_and_retention(
        self, settings: Settings
    ) -> None:
        database = Database(
            settings.model_copy(update={"db_statement_timeout_ms": 1234, "sync_retention_days": 7})
        )
        try:
            transaction = database.transaction("someone")
            row = await transaction.fetchrow(_LIMITS)
            await transaction.commit()
        finally:
            await database.dispose()
        assert row is not None
        assert tuple(row) == ("1234ms", "7")

    async def test_a_nul_in_a_user_id_never_reaches_the_database(self, app: FastAPI) -> None:
        transaction = app.state.database.transaction("a\x00b")
        with pytest.raises(ValueError, match="NUL"):
            await transaction.fetchrow(_WHO_AM_I)
        await transaction.rollback()


_WHO_AM_I = Query(
    select(func.current_user(), func.current_setting("app.user_id", True), func.pg_backend_pid())
)


class TestOwnerRole:
    async def test_sees_no_rows_without_switching(
        self, db: asyncpg.Connection, alice: User, create_task: CreateTask
    ) -> None:
        await create_task(alice)
        assert await db.fetchval("SELECT current_user") == OWNER_ROLE
        # FORCE ROW LEVEL SECURITY: owning the table is no way around the policies.
        assert await db.fetchval("SELECT count(*) FROM tasks") == 0
        async with acting_as(db, alice.id):
            assert await db.fetchval("SELECT count(*) FROM tasks") == 1

    async def test_cannot_write_without_switching(
        self, db: asyncpg.Connection, alice: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice)
        async with db.transaction():
            assert await db.execute("DELETE FROM tasks WHERE id = $1", task["id"]) == "DELETE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _insert(db, alice.id)

    async def test_row_level_security_is_enabled_and_forced(self, db: asyncpg.Connection) -> None:
        row = await db.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'tasks'::regclass"
        )
        assert tuple(row) == (True, True)


class TestRoles:
    async def test_application_role_cannot_bypass_or_log_in(self, db: asyncpg.Connection) -> None:
        role = await db.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1",
            APP_ROLE,
        )
        assert role is not None
        assert dict(role) == {"rolsuper": False, "rolbypassrls": False, "rolcanlogin": False}

    async def test_api_logs_in_as_a_plain_owner(
        self, db: asyncpg.Connection, database_url: str
    ) -> None:
        assert make_url(database_url).username == OWNER_ROLE
        role = await db.fetchrow(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        assert dict(role) == {"rolsuper": False, "rolbypassrls": False}
        owner = await db.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'tasks'")
        assert owner == OWNER_ROLE


_LIMITS = Query(
    select(
        func.current_setting("statement_timeout"),
        func.current_setting("app.sync_retention_days"),
    )
)
