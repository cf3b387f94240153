"""Request schemas: what a body may say, and what an update changes."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tasks_api.errors import validation_details
from tasks_api.schemas.task import TaskComplete, TaskCreate, TaskUpdate


def _fields(error: ValidationError) -> set[str]:
    return {detail["field"] for detail in validation_details(error.errors())}


class TestTaskUpdate:
    @pytest.mark.parametrize(
        "body",
        [
            {"title": "New"},
            {"description": None},
            {"due_at": None},
            {"priority": "low", "tags": []},
            {"is_completed": False},
            {"title": "x", "description": "d", "due_at": "2026-12-01T17:00:00Z"},
        ],
    )
    def test_changes_only_the_given_fields(self, body: dict[str, object]) -> None:
        changes = TaskUpdate.model_validate(body).changes()
        assert set(changes) == set(body)

    def test_null_is_a_change(self) -> None:
        assert TaskUpdate.model_validate({"description": None}).changes() == {"description": None}

    def test_values_are_normalised(self) -> None:
        update = TaskUpdate.model_validate_json(
            '{"title": "  Trimmed  ", "tags": [" a ", "B"], "due_at": "2026-12-01T19:00:00+02:00"}'
        )
        changes = update.changes()
        assert changes["title"] == "Trimmed"
        assert changes["tags"] == ["a", "B"]
        assert changes["due_at"] == datetime(2026, 12, 1, 17, tzinfo=UTC)
        assert changes["due_at"].utcoffset() == timedelta(hours=2)

    def test_nothing_to_change(self) -> None:
        with pytest.raises(ValidationError) as error:
            TaskUpdate.model_validate({})
        assert _fields(error.value) == {"body"}

    @pytest.mark.parametrize("field", ["title", "priority", "tags", "is_completed"])
    def test_null_where_a_value_is_required(self, field: str) -> None:
        with pytest.raises(ValidationError) as error:
            TaskUpdate.model_validate({field: None})
        assert _fields(error.value) == {field}


class TestTaskCreate:
    def test_defaults(self) -> None:
        task = TaskCreate.model_validate_json('{"title": "x"}')
        assert task.model_dump() == {
            "title": "x",
            "description": None,
            "priority": "medium",
            "due_at": None,
            "tags": [],
            "is_completed": False,
        }

    def test_title_length_counts_code_points(self) -> None:
        assert TaskCreate(title="👍🏽" * 250).title == "👍🏽" * 250  # 2 code points each
        with pytest.raises(ValidationError):
            TaskCreate(title="👍🏽" * 250 + "x")

    @pytest.mark.parametrize(
        ("body", "fields"),
        [
            ('{"title": "x", "id": "0193a6f1-5b7c-7cc0-9e1d-2f3a4b5c6d7e"}', {"id"}),
            ('{"title": "x", "colour": "red"}', {"colour"}),
            ('{"title": 5}', {"title"}),
            ('{"title": "x", "is_completed": "true"}', {"is_completed"}),
            ('{"title": "x", "due_at": "2026-12-01T17:00:00"}', {"due_at"}),
            ('{"title": "x", "due_at": 1796144400}', {"due_at"}),
            ('{"title": "x", "tags": ["a", "a"]}', {"tags"}),
            ('{"title": ', {"body"}),
            ("[]", {"body"}),
        ],
    )
    def test_invalid(self, body: str, fields: set[str]) -> None:
        with pytest.raises(ValidationError) as error:
            TaskCreate.model_validate_json(body)
        assert _fields(error.value) == fields

    def test_tags_equal_once_trimmed_are_merged(self) -> None:
        # The document's uniqueItems compares tags as sent (specs/input-rules.md).
        assert TaskCreate.model_validate_json('{"title": "x", "tags": ["a", " a", "b"]}').tags == [
            "a",
            "b",
        ]

    def test_read_only_fields_say_so(self) -> None:
        with pytest.raises(ValidationError) as error:
            TaskCreate.model_validate_json('{"title": "x", "version": 2, "colour": "red"}')
        details = validation_details(error.value.errors())
        assert {"field": "version", "message": "is read-only"} in details
        assert {"field": "colour", "message": "is not a known field"} in details

    def test_aware_timestamp_keeps_its_instant(self) -> None:
        task = TaskCreate.model_validate_json(
            '{"title": "x", "due_at": "2026-12-01T12:00:00-05:00"}'
        )
        assert task.due_at == datetime(2026, 12, 1, 17, tzinfo=UTC)
        assert task.due_at is not None
        assert task.due_at.utcoffset() == timedelta(hours=-5)


class TestTaskComplete:
    def test_defaults_to_complete(self) -> None:
        assert TaskComplete.model_validate_json("{}").is_completed is True

    def test_reopen(self) -> None:
        assert TaskComplete.model_validate_json('{"is_completed": false}').is_completed is False

    @pytest.mark.parametrize("body", ['{"is_completed": "false"}', '{"is_completed": 0}'])
    def test_strict(self, body: str) -> None:
        with pytest.raises(ValidationError):
            TaskComplete.model_validate_json(body)
