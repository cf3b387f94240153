"""List cursors: signed, bound to user and query, and refused in any other shape."""

import base64
import string
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from tasks_api.config import Settings
from tasks_api.schemas.task_query import TaskListQuery
from tasks_api.services.cursor import CursorSigner, InvalidCursor

SECRET = b"s" * 32
SCOPE = {"user_id": "alice", "query": {"sort": "title", "tag": ["a", "b"]}}
POSITION = [0, ["Buy milk", "0193a6f1-5b7c-7cc0-9e1d-2f3a4b5c6d7e"]]


@pytest.fixture
def signer() -> CursorSigner:
    return CursorSigner(SECRET)


@pytest.fixture
def cursor(signer: CursorSigner) -> str:
    return signer.encode(SCOPE, POSITION)


class _DriverUUID(UUID):
    """Like asyncpg's UUID: a subclass that orjson does not serialize by itself."""


class TestRoundTrip:
    def test_decodes_what_it_encoded(self, signer: CursorSigner, cursor: str) -> None:
        assert signer.decode(SCOPE, cursor) == POSITION

    def test_url_safe(self, cursor: str) -> None:
        assert set(cursor) <= set(string.ascii_letters + string.digits + "-_.")

    def test_driver_values(self, signer: CursorSigner) -> None:
        when = datetime(2026, 11, 21, 19, 24, 0, 123456, tzinfo=UTC)
        task_id = _DriverUUID("0193a6f1-5b7c-7cc0-9e1d-2f3a4b5c6d7e")
        decoded = signer.decode(SCOPE, signer.encode(SCOPE, [1, [when, task_id]]))
        assert decoded == [1, ["2026-11-21T19:24:00.123456+00:00", str(task_id)]]
        assert datetime.fromisoformat(decoded[1][0]) == when

    def test_scope_key_order_does_not_matter(self, signer: CursorSigner, cursor: str) -> None:
        reordered = {"query": {"tag": ["a", "b"], "sort": "title"}, "user_id": "alice"}
        assert signer.decode(reordered, cursor) == POSITION


class TestRefused:
    @pytest.mark.parametrize(
        "scope",
        [
            {**SCOPE, "user_id": "bob"},
            {**SCOPE, "query": {"sort": "created", "tag": ["a", "b"]}},
            {**SCOPE, "query": {"sort": "title", "tag": ["a"]}},
            {},
        ],
    )
    def test_other_scope(self, signer: CursorSigner, cursor: str, scope: Any) -> None:
        with pytest.raises(InvalidCursor):
            signer.decode(scope, cursor)

    def test_other_key(self, cursor: str) -> None:
        with pytest.raises(InvalidCursor):
            CursorSigner(b"t" * 32).decode(SCOPE, cursor)

    def test_every_altered_character(self, signer: CursorSigner, cursor: str) -> None:
        alphabet = string.ascii_letters + string.digits + "-_"
        for index, char in enumerate(cursor):
            for replacement in {*alphabet, ".", "+", "/", "="} - {char}:
                altered = cursor[:index] + replacement + cursor[index + 1 :]
                with pytest.raises(InvalidCursor):
                    signer.decode(SCOPE, altered)

    def test_cut_or_extended(self, signer: CursorSigner, cursor: str) -> None:
        for altered in (cursor[:-1], cursor[1:], cursor + "A", cursor + "=", "A" + cursor):
            with pytest.raises(InvalidCursor):
                signer.decode(SCOPE, altered)

    def test_other_spellings_of_the_same_bytes(self, signer: CursorSigner) -> None:
        # A one-byte payload: its second character carries four unused low bits.
        cursor = signer.encode(SCOPE, 7)
        payload, mac = cursor.split(".")
        assert base64.urlsafe_b64decode(payload + "==") == b"7"
        same_bytes = payload[0] + chr(ord(payload[1]) + 1)
        assert base64.urlsafe_b64decode(same_bytes + "==") == b"7"
        for altered in (f"{same_bytes}.{mac}", f"{payload}==.{mac}"):
            with pytest.raises(InvalidCursor):
                signer.decode(SCOPE, altered)

    @pytest.mark.parametrize(
        "garbage", ["", ".", "..", "abc", "a.b", "é.é", "\x00", "====.====", "a" * 1000]
    )
    def test_garbage(self, signer: CursorSigner, garbage: str) -> None:
        with pytest.raises(InvalidCursor):
            signer.decode(SCOPE, garbage)

    def test_unsigned_json(self, signer: CursorSigner) -> None:
        payload = base64.urlsafe_b64encode(b'[0, ["x", "y"]]').rstrip(b"=").decode()
        with pytest.raises(InvalidCursor):
            signer.decode(SCOPE, f"{payload}.{'A' * 22}")

    def test_invalid_cursor_is_a_value_error(self) -> None:
        # The service turns every ValueError of a cursor into a 400 naming `cursor`.
        assert issubclass(InvalidCursor, ValueError)


class TestKey:
    def test_from_the_jwt_secret(self) -> None:
        settings = Settings(_env_file=None, jwt_secret="j" * 32, database_url="postgresql://x/y")
        cursor = CursorSigner.from_settings(settings).encode(SCOPE, POSITION)
        assert CursorSigner(b"j" * 32).decode(SCOPE, cursor) == POSITION

    def test_from_the_database_url_without_a_jwt_secret(self) -> None:
        settings = Settings(
            _env_file=None, jwks_url="https://idp/jwks", database_url="postgresql://x/y"
        )
        cursor = CursorSigner.from_settings(settings).encode(SCOPE, POSITION)
        assert CursorSigner(b"postgresql://x/y").decode(SCOPE, cursor) == POSITION

    def test_needs_a_secret(self) -> None:
        settings = Settings(_env_file=None, jwks_url="https://idp/jwks")
        with pytest.raises(RuntimeError):
            CursorSigner.from_settings(settings)


class TestBinding:
    def test_same_instant_same_query(self) -> None:
        utc = TaskListQuery.model_validate({"due_before": "2026-11-21T12:00:00Z"})
        offset = TaskListQuery.model_validate({"due_before": "2026-11-21T14:00:00+02:00"})
        assert utc.binding() == offset.binding()

    def test_default_order_and_tag_order(self) -> None:
        implicit = TaskListQuery.model_validate({"sort": "title", "tag": ["b", "a", "b"]})
        explicit = TaskListQuery.model_validate(
            {"sort": "title", "order": "asc", "tag": ["a", "b"]}
        )
        assert implicit.binding() == explicit.binding()

    def test_page_size_and_cursor_are_not_bound(self) -> None:
        first = TaskListQuery.model_validate({"limit": 5})
        later = TaskListQuery.model_validate({"limit": 50, "cursor": "eA.eA"})
        assert first.binding() == later.binding()

    @pytest.mark.parametrize(
        "change",
        [
            {"sort": "updated"},
            {"order": "asc"},
            {"status": "pending"},
            {"priority": "low"},
            {"tag": ["a"]},
            {"q": "milk"},
            {"due_before": "2026-11-21T12:00:00Z"},
            {"due_after": "2026-11-21T12:00:00Z"},
            {"updated_since": "2026-11-21T12:00:00Z"},
        ],
    )
    def test_everything_else_is(self, change: dict[str, Any]) -> None:
        base = TaskListQuery.model_validate({})
        assert TaskListQuery.model_validate(change).binding() != base.binding()
