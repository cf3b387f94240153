"""the manual order, the sync feed and per-user counts: one write path in the database

Every statement that writes `tasks` goes through the triggers created here, so no write
operation of the API can forget its bookkeeping (specs/sync.md):

- BEFORE each statement: lock the user's `task_sync` row (created on first use), before any
  task row is touched. A user's writes are serialized by it, so the sync positions they
  take commit in the order they were taken, and no two writers compute the same position.
- BEFORE each row: a new task without a position goes first (`tasks_key_before`, the
  fractional-indexing library's key before the current first one); every inserted or
  updated row takes the next sync position.
- AFTER each statement: the user's counts move by what changed, deletions become
  tombstones (expired ones are purged, a bounded batch at a time), the user's position is
  recorded, and one NOTIFY on `task_changes` names the user.

Existing tasks are backfilled in batches of users, each batch its own short transaction
holding only those users' locks: positions in the current default order (newest first),
counts from the rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Users per backfill transaction: bounded lock time and WAL per commit.
BACKFILL_USERS = 200

_COUNTERS = ("open_low", "open_medium", "open_high", "done_low", "done_medium", "done_high")


def _counts(rows: str, sign: str = "") -> str:
    """The six counters of `rows` by user, negated with sign='-'."""
    filters = ", ".join(
        f"{sign}count(*) FILTER (WHERE {'' if name.startswith('done') else 'NOT '}is_completed"
        f" AND priority = '{name.split('_')[1]}') AS {name}"
        for name in _COUNTERS
    )
    return f"SELECT user_id, {filters} FROM {rows} GROUP BY user_id"


_SUM = ", ".join(f"sum(d.{name})::bigint AS {name}" for name in _COUNTERS)


def _record(deltas: str) -> str:
    """One statement: move the users' counts by `deltas`, record their position, and notify
    the users that an API instance streams to (task_listeners). NOTIFY serializes the commits
    of every notifying transaction of the cluster (one lock at commit): a write of a user
    nobody streams to skips it (specs/sync.md, "Listeners")."""
    names = ", ".join(_COUNTERS)
    moved = ", ".join(f"{name} = s.{name} + excluded.{name}" for name in _COUNTERS)
    return f"""
            WITH recorded AS (
                INSERT INTO task_sync AS s (user_id, seq, {names})
                    SELECT user_id, currval('task_change_seq'), {names} FROM ({deltas}) AS d
                ON CONFLICT (user_id) DO UPDATE SET {moved},
                    seq = greatest(s.seq, excluded.seq)
                RETURNING s.user_id)
            SELECT count(pg_notify('task_changes', r.user_id)) INTO notified FROM recorded AS r
                WHERE EXISTS (SELECT FROM task_listeners AS l WHERE l.user_id = r.user_id);"""


FUNCTIONS = [
    # fractional-indexing's generate_key_between(NULL, b), in SQL so that an INSERT needs
    # no round trip to read the first position; tests compare it with the library.
    r"""
    CREATE FUNCTION tasks_key_before(b text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
    DECLARE
        digits CONSTANT text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
        head text;
        len int;
        int_part text;
        digs text;
        d int;
    BEGIN
        IF b IS NULL THEN
            RETURN 'a0';
        END IF;
        head := substr(b, 1, 1);
        IF ascii(head) BETWEEN ascii('a') AND ascii('z') THEN
            len := ascii(head) - ascii('a') + 2;
        ELSIF ascii(head) BETWEEN ascii('A') AND ascii('Z') THEN
            len := ascii('Z') - ascii(head) + 2;
        ELSE
            RAISE EXCEPTION 'invalid order key head: %', b;
        END IF;
        int_part := substr(b, 1, len);
        IF length(b) > len THEN
            RETURN int_part;  -- b has a fraction: its integer part sorts before it
        END IF;
        IF int_part = 'A' || repeat('0', 26) THEN
            RAISE EXCEPTION 'no order key before %', b;
        END IF;
        digs := substr(int_part, 2);
        FOR i IN REVERSE length(digs)..1 LOOP
            d := strpos(digits, substr(digs, i, 1)) - 2;
            IF d >= 0 THEN
                RETURN head || overlay(digs PLACING substr(digits, d + 1, 1) FROM i FOR 1);
            END IF;
            digs := overlay(digs PLACING 'z' FROM i FOR 1);
        END LOOP;
        IF head = 'a' THEN
            RETURN 'Zz';
        END IF;
        IF head = 'A' THEN
            RAISE EXCEPTION 'no order key before %', b;
        END IF;
        head := chr(ascii(head) - 1);
        IF ascii(head) < ascii('Z') THEN
            RETURN head || digs || 'z';
        END IF;
        RETURN head || substr(digs, 1, length(digs) - 1);
    END
    $$
    """,
    # The library's integer part of key `k`, validated as the library validates a key.
    r"""
    CREATE FUNCTION tasks_key_integer(k text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
    DECLARE
        head int := ascii(k);
        len int;
    BEGIN
        IF head BETWEEN ascii('a') AND ascii('z') THEN
            len := head - ascii('a') + 2;
        ELSIF head BETWEEN ascii('A') AND ascii('Z') THEN
            len := ascii('Z') - head + 2;
        END IF;
        IF len IS NULL OR length(k) < len OR k = 'A' || repeat('0', 26)
                OR (length(k) > len AND right(k, 1) = '0') THEN
            RAISE EXCEPTION 'invalid order key: %', k;
        END IF;
        RETURN left(k, len);
    END
    $$
    """,
    # The library's midpoint(a, b) of two fractions (b NULL: the end), as a loop.
    r"""
    CREATE FUNCTION tasks_key_midpoint(a text, b text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
    DECLARE
        digits CONSTANT text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
        result text := '';
        n int;
        da int;
        db int;
    BEGIN
        IF b IS NOT NULL AND a COLLATE "C" >= b COLLATE "C" THEN
            RAISE EXCEPTION 'order keys out of order: % >= %', a, b;
        END IF;
        LOOP
            IF b IS NOT NULL THEN
                -- Drop the common prefix, `a` padded with zeros (b is never empty here).
                n := 0;
                WHILE n < length(b)
                        AND coalesce(nullif(substr(a, n + 1, 1), ''), '0') = substr(b, n + 1, 1)
                LOOP
                    n := n + 1;
                END LOOP;
                result := result || left(b, n);
                a := substr(a, n + 1);
                b := substr(b, n + 1);
            END IF;
            da := CASE WHEN a = '' THEN 0 ELSE strpos(digits, left(a, 1)) - 1 END;
            db := CASE WHEN b IS NULL THEN 62 ELSE strpos(digits, left(b, 1)) - 1 END;
            IF db - da > 1 THEN
                -- round_half_up((da + db) / 2)
                RETURN result || substr(digits, (da + db + 1) / 2 + 1, 1);
            END IF;
            IF b IS NOT NULL AND length(b) > 1 THEN
                RETURN result || left(b, 1);
            END IF;
            result := result || substr(digits, da + 1, 1);
            a := substr(a, 2);
            b := NULL;
        END LOOP;
    END
    $$
    """,
    # fractional-indexing's generate_key_between(a, b): a move computes its key in the
    # statement that writes it (tasks_move). Compared byte-wise (COLLATE "C"), as the
    # library (and JavaScript) compare strings; tests compare it with the library.
    r"""
    CREATE FUNCTION tasks_key_between(a text, b text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
    DECLARE
        digits CONSTANT text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
        ia text;
        ib text;
        head text;
        digs text;
        d int;
        inc text;
    BEGIN
        IF a IS NULL THEN
            IF b IS NULL THEN
                RETURN 'a0';
            END IF;
            ib := tasks_key_integer(b);
            IF ib = 'A' || repeat('0', 26) THEN
                RETURN ib || tasks_key_midpoint('', substr(b, 27));
            END IF;
            RETURN tasks_key_before(b);
        END IF;
        ia := tasks_key_integer(a);
        IF b IS NOT NULL THEN
            ib := tasks_key_integer(b);
            IF a COLLATE "C" >= b COLLATE "C" THEN
                RAISE EXCEPTION 'order keys out of order: % >= %', a, b;
            END IF;
            IF ia = ib THEN
                RETURN ia || tasks_key_midpoint(
                    substr(a, length(ia) + 1), substr(b, length(ib) + 1));
            END IF;
        END IF;
        -- inc := the integer after ia (NULL past the last one)
        head := left(ia, 1);
        digs := substr(ia, 2);
        FOR i IN REVERSE length(digs)..1 LOOP
            d := strpos(digits, substr(digs, i, 1));  -- the next digit's 1-based place
            IF d < 62 THEN
                inc := head || overlay(digs PLACING substr(digits, d + 1, 1) FROM i FOR 1);
                EXIT;
            END IF;
            digs := overlay(digs PLACING '0' FROM i FOR 1);
        END LOOP;
        IF inc IS NULL THEN
            IF head = 'Z' THEN
                inc := 'a0';
            ELSIF head <> 'z' THEN
                head := chr(ascii(head) + 1);
                inc := CASE WHEN ascii(head) > ascii('a') THEN head || digs || '0'
                            ELSE head || left(digs, length(digs) - 1) END;
            END IF;
        END IF;
        IF b IS NULL THEN
            RETURN coalesce(inc, ia || tasks_key_midpoint(substr(a, length(ia) + 1), NULL));
        END IF;
        IF inc IS NULL THEN
            RAISE EXCEPTION 'no order key after %', a;
        END IF;
        IF inc COLLATE "C" < b COLLATE "C" THEN
            RETURN inc;
        END IF;
        RETURN ia || tasks_key_midpoint(substr(a, length(ia) + 1), NULL);
    END
    $$
    """,
    # The i-th (0-based) key of the 'd' range: 'd' and four base-62 digits, 14.7 million
    # keys above every key the API had handed out when the backfill ran.
    r"""
    CREATE FUNCTION tasks_backfill_key(i bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT 'd' || string_agg(
            substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
                   (i / (62::bigint ^ p)::bigint % 62)::int + 1, 1), '' ORDER BY p DESC)
        FROM generate_series(0, 3) AS p
    $$
    """,
    # Takes (and on first use creates) the user's row lock: DO UPDATE locks the existing row
    # even when its WHERE is false, and writes no row version. Also called by the API before
    # a read that a write depends on (a move reads its neighbours). PL/pgSQL, not SQL: it
    # keeps its plan for the session (before PostgreSQL 18 a SQL function replans per
    # call: 600 against 410 us of backend CPU per update transaction, measured on 15).
    """
    CREATE FUNCTION task_sync_lock(u text) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO task_sync (user_id) VALUES (u)
        ON CONFLICT (user_id) DO UPDATE SET seq = task_sync.seq WHERE false;
    END
    $$
    """,
    # A move in one statement (specs/ordering.md): the user's lock first, then the reads.
    # VOLATILE: each query below takes a new snapshot, so it sees every write committed
    # before the lock was granted, and no other write of the user can come in between: the
    # neighbours read are the neighbours when the key is written, and two moves into one
    # gap never compute the same key. `outcome`: 'after' (no task of the user), 'missing',
    # 'stale' (If-Match), 'placed' (already there: `task` as it is), 'moved' (`task` as
    # written), 'rebalance' (the key would be longer than `longest`: nothing written, the
    # caller rebalances, still under the lock).
    r"""
    CREATE FUNCTION tasks_move(
        u text, moving uuid, anchor uuid, versions integer[], longest integer,
        OUT outcome text, OUT task tasks)
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        before_key text;
        next_key text;
        new_key text;
    BEGIN
        PERFORM task_sync_lock(u);
        IF anchor IS NOT NULL THEN
            SELECT t.position INTO before_key FROM tasks AS t
                WHERE t.user_id = u AND t.id = anchor;
            IF NOT FOUND THEN
                outcome := 'after';
                RETURN;
            END IF;
        END IF;
        SELECT * INTO task FROM tasks AS t WHERE t.user_id = u AND t.id = moving;
        IF NOT FOUND THEN
            task := NULL;
            outcome := 'missing';
            RETURN;
        END IF;
        IF versions IS NOT NULL AND NOT task.version = ANY (versions) THEN
            task := NULL;
            outcome := 'stale';
            RETURN;
        END IF;
        -- The first key after the anchor (after nothing: the first), the task left out.
        -- Two queries, not one with `before_key IS NULL OR ...`: each keeps a generic plan
        -- whose key bound is an index condition (one probe of uq_tasks_user_position).
        IF before_key IS NULL THEN
            SELECT min(t.position) INTO next_key FROM tasks AS t
                WHERE t.user_id = u AND t.id <> moving;
        ELSE
            SELECT min(t.position) INTO next_key FROM tasks AS t
                WHERE t.user_id = u AND t.id <> moving AND t.position > before_key COLLATE "C";
        END IF;
        IF (before_key IS NULL OR before_key COLLATE "C" < task.position COLLATE "C")
                AND (next_key IS NULL OR task.position COLLATE "C" < next_key COLLATE "C") THEN
            outcome := 'placed';
            RETURN;
        END IF;
        new_key := tasks_key_between(before_key, next_key);
        IF length(new_key) > longest THEN
            outcome := 'rebalance';
            RETURN;
        END IF;
        UPDATE tasks AS t SET position = new_key, version = t.version + 1, updated_at = now()
            WHERE t.user_id = u AND t.id = moving
            RETURNING t.* INTO task;
        outcome := 'moved';
    END
    $$
    """,
    """
    CREATE FUNCTION tasks_lock_user() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        u text := current_setting('app.user_id', true);
    BEGIN
        -- The API always sets the user; a maintenance session (migrations) locks by itself.
        IF u IS NOT NULL AND u <> '' THEN
            -- task_sync_lock(u), inline: a call less on every write statement.
            INSERT INTO task_sync (user_id) VALUES (u)
            ON CONFLICT (user_id) DO UPDATE SET seq = task_sync.seq WHERE false;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION tasks_before_write() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' AND NEW.position IS NULL THEN
            -- Runs after the statement's lock: it sees every committed task of the user.
            NEW.position := tasks_key_before(
                (SELECT min(position) FROM tasks WHERE user_id = NEW.user_id));
        END IF;
        NEW.sync_seq := nextval('task_change_seq');
        RETURN NEW;
    END
    $$
    """,
    # A statement's bookkeeping in one SQL statement per event: the counts moved by the
    # statement's rows (`deltas`: user_id and the six counters), the user's position
    # recorded, listeners woken. An upsert, so a maintenance session's first write of a user
    # (no lock taken: no app.user_id) creates the row too; in the API the row is locked
    # already. One statement, not a function per user: this runs on every write, and each
    # PL/pgSQL call and statement costs server CPU (specs/sync.md, "Cost").
    f"""
    CREATE FUNCTION tasks_after_write() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        retention interval;
        u text;
        notified bigint;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {_record(_counts("new_rows"))}
        ELSIF TG_OP = 'UPDATE' THEN
            {
        _record(
            f"SELECT user_id, {_SUM} FROM ({_counts('new_rows')} UNION ALL "
            f"{_counts('old_rows', '-')}) AS d GROUP BY user_id"
        )
    }
        ELSE
            INSERT INTO task_tombstones (user_id, task_id, seq)
                SELECT user_id, id, nextval('task_change_seq') FROM old_rows ORDER BY id;
            {_record(_counts("old_rows", "-"))}
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

TRIGGERS = [
    "CREATE TRIGGER tasks_lock_user BEFORE INSERT OR UPDATE OR DELETE ON tasks "
    "FOR EACH STATEMENT EXECUTE FUNCTION tasks_lock_user()",
    "CREATE TRIGGER tasks_before_write BEFORE INSERT OR UPDATE ON tasks "
    "FOR EACH ROW EXECUTE FUNCTION tasks_before_write()",
    "CREATE TRIGGER tasks_after_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION tasks_after_write()",
    "CREATE TRIGGER tasks_after_update AFTER UPDATE ON tasks "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION tasks_after_write()",
    "CREATE TRIGGER tasks_after_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION tasks_after_write()",
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
    op.execute("CREATE SEQUENCE task_change_seq AS bigint")
    op.execute("GRANT USAGE ON SEQUENCE task_change_seq TO tasks_app")
    op.create_table(
        "task_sync",
        sa.Column("user_id", sa.Text(), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
            for name in ("seq", "purged_seq", *_COUNTERS)
        ),
        sa.CheckConstraint(
            "char_length(user_id) BETWEEN 1 AND 255", name=op.f("ck_task_sync_user_id_length")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_task_sync")),
    )
    op.create_table(
        "task_tombstones",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "deleted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id", "task_id", name=op.f("pk_task_tombstones")),
    )
    op.create_index("ix_task_tombstones_user_seq", "task_tombstones", ["user_id", "seq"])
    op.create_index("ix_task_tombstones_user_deleted", "task_tombstones", ["user_id", "deleted_at"])
    _isolate("task_sync")
    _isolate("task_tombstones")
    op.create_table(
        "task_listeners",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("instance", sa.Text(), nullable=False),
        sa.Column(
            "since", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id", "instance", name=op.f("pk_task_listeners")),
    )
    _isolate("task_listeners")

    # Both instant: no default to write into existing rows (0 is a constant default).
    op.add_column("tasks", sa.Column("position", sa.Text(collation="C"), nullable=True))
    op.add_column(
        "tasks", sa.Column("sync_seq", sa.BigInteger(), server_default="0", nullable=False)
    )
    for statement in (*FUNCTIONS, *TRIGGERS):
        op.execute(statement)

    with op.get_context().autocommit_block():
        _backfill()
        op.execute("ALTER TABLE task_sync FORCE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE task_tombstones FORCE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE task_listeners FORCE ROW LEVEL SECURITY")
        # Built without blocking writes; a failed build leaves an invalid index to drop.
        op.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY uq_tasks_user_position ON tasks (user_id, position)"
        )
        op.execute("CREATE INDEX CONCURRENTLY ix_tasks_user_sync_seq ON tasks (user_id, sync_seq)")
        # NOT NULL without a scan under an exclusive lock: a validated CHECK proves it first.
        op.execute(
            "ALTER TABLE tasks ADD CONSTRAINT ck_tasks_position_format "
            "CHECK (position ~ '^[0-9A-Za-z]{1,128}$') NOT VALID"
        )
        op.execute("ALTER TABLE tasks VALIDATE CONSTRAINT ck_tasks_position_format")
        op.execute("ALTER TABLE tasks ALTER COLUMN position SET NOT NULL")


def _backfill() -> None:
    """Positions (newest first) and counts for the tasks that exist, a batch of users at a
    time. Each batch locks its users' task_sync rows first, so a concurrent write of theirs
    waits for the batch, and one that came before is counted by its own trigger."""
    bind = op.get_bind()
    # The owner is held to row-level security (FORCE) and no policy names it: lifted for
    # the backfill only, and only for the owner (the API runs as tasks_app throughout).
    bind.execute(sa.text("ALTER TABLE tasks NO FORCE ROW LEVEL SECURITY"))
    try:
        users = [
            row[0]
            for row in bind.execute(
                sa.text("SELECT DISTINCT user_id FROM tasks WHERE position IS NULL")
            )
        ]
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
        bind.execute(sa.text("ALTER TABLE tasks FORCE ROW LEVEL SECURITY"))


def _backfill_users(bind: sa.Connection, users: list[str]) -> None:
    param = sa.bindparam("users", users, type_=sa.ARRAY(sa.Text()))
    bind.execute(
        sa.text(
            "SELECT task_sync_lock(u) FROM unnest(CAST(:users AS text[])) AS u ORDER BY u"
        ).bindparams(param)
    )
    bind.execute(
        sa.text(
            """
            UPDATE tasks SET position = ranked.position
            FROM (
                SELECT id, tasks_backfill_key(row_number() OVER (
                    PARTITION BY user_id ORDER BY created_at DESC, id DESC) - 1) AS position
                FROM tasks WHERE user_id = ANY(:users) AND position IS NULL
            ) AS ranked
            WHERE tasks.id = ranked.id
            """
        ).bindparams(param)
    )
    names = ", ".join(_COUNTERS)
    bind.execute(
        sa.text(
            f"""
            UPDATE task_sync AS s SET ({names}) = ({", ".join(f"c.{n}" for n in _COUNTERS)})
            FROM ({_counts("tasks WHERE user_id = ANY(:users)")}) AS c
            WHERE s.user_id = c.user_id
            """
        ).bindparams(param)
    )


def downgrade() -> None:
    for trigger in (
        "tasks_after_delete",
        "tasks_after_update",
        "tasks_after_insert",
        "tasks_before_write",
        "tasks_lock_user",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON tasks")
    for function in (
        "tasks_after_write()",
        "tasks_before_write()",
        "tasks_lock_user()",
        "task_sync_lock(text)",
        "tasks_backfill_key(bigint)",
        "tasks_move(text, uuid, uuid, integer[], integer)",
        "tasks_key_between(text, text)",
        "tasks_key_midpoint(text, text)",
        "tasks_key_integer(text)",
        "tasks_key_before(text)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.execute("DROP INDEX IF EXISTS ix_tasks_user_sync_seq")
    op.execute("DROP INDEX IF EXISTS uq_tasks_user_position")
    op.execute("ALTER TABLE tasks DROP CONSTRAINT IF EXISTS ck_tasks_position_format")
    op.drop_column("tasks", "sync_seq")
    op.drop_column("tasks", "position")
    op.execute("DROP POLICY IF EXISTS task_tombstones_user_isolation ON task_tombstones")
    op.execute("DROP POLICY IF EXISTS task_sync_user_isolation ON task_sync")
    op.execute("DROP POLICY IF EXISTS task_listeners_user_isolation ON task_listeners")
    op.drop_table("task_listeners")
    op.drop_table("task_tombstones")
    op.drop_table("task_sync")
    op.execute("DROP SEQUENCE IF EXISTS task_change_seq")
