"""ETags and the conditional request headers, without HTTP around them."""

from uuid import UUID

import pytest

from tasks_api.routers._conditional import accepted_versions, etag, none_match

TASK = UUID("0193a6f1-5b7c-7cc0-9e1d-2f3a4b5c6d7e")
OTHER = UUID("0193a6f1-5b7c-7cc0-9e1d-000000000000")


def _tag(task_id: UUID, version: int) -> str:
    return f'"{task_id}.{version}"'


class TestEtag:
    def test_strong_and_quoted_from_id_and_version(self) -> None:
        assert etag({"id": TASK, "version": 3}) == f'"{TASK}.3"'  # type: ignore[arg-type]

    def test_changes_with_the_version(self) -> None:
        first = etag({"id": TASK, "version": 1})  # type: ignore[arg-type]
        second = etag({"id": TASK, "version": 2})  # type: ignore[arg-type]
        assert first != second
        assert not first.startswith("W/")


class TestAcceptedVersions:
    @pytest.mark.parametrize("header", [None, "*", " * "])
    def test_any_version(self, header: str | None) -> None:
        assert accepted_versions(header, TASK) is None

    @pytest.mark.parametrize(
        ("header", "versions"),
        [
            (_tag(TASK, 3), {3}),
            (f"{_tag(TASK, 3)}, {_tag(TASK, 4)}", {3, 4}),
            (f"{_tag(TASK, 3)},{_tag(TASK, 4)}", {3, 4}),
            (f"  {_tag(TASK, 12)}  ", {12}),
            # If-Match compares strongly: a weak tag never matches.
            (f"W/{_tag(TASK, 3)}", set()),
            (f"W/{_tag(TASK, 3)}, {_tag(TASK, 4)}", {4}),
            # Another task's tag says nothing about this one.
            (_tag(OTHER, 3), set()),
            (f"{_tag(OTHER, 3)}, {_tag(TASK, 5)}", {5}),
            # Unquoted or malformed tags match nothing.
            (f"{TASK}.3", set()),
            (f'"{TASK}.x"', set()),
            (f'"{TASK}"', set()),
            ('""', set()),
            ("garbage", set()),
            ("", set()),
        ],
    )
    def test_versions(self, header: str, versions: set[int]) -> None:
        assert accepted_versions(header, TASK) == versions


class TestNoneMatch:
    CURRENT = _tag(TASK, 2)

    @pytest.mark.parametrize(
        "header",
        [
            _tag(TASK, 2),
            f"W/{_tag(TASK, 2)}",  # If-None-Match compares weakly
            f"{_tag(TASK, 1)}, {_tag(TASK, 2)}",
            f'  "x", {_tag(TASK, 2)} ',
            "*",
        ],
    )
    def test_matches(self, header: str) -> None:
        assert none_match(header, self.CURRENT) is True

    @pytest.mark.parametrize(
        "header",
        [None, "", _tag(TASK, 1), _tag(OTHER, 2), f"W/{_tag(TASK, 3)}", f"{TASK}.2", "garbage"],
    )
    def test_does_not_match(self, header: str | None) -> None:
        assert none_match(header, self.CURRENT) is False
