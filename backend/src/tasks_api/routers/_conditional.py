"""ETags derived from id and version, and the If-Match / If-None-Match headers."""

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from asyncpg import Record


def etag(task: Mapping[str, Any] | Record) -> str:
    return f'"{task["id"]}.{task["version"]}"'


def _tags(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def accepted_versions(if_match: str | None, task_id: UUID) -> frozenset[int] | None:
    """The versions an If-Match accepts; None when any version will do (absent or `*`).

    If-Match compares strongly, so weak tags never match; neither do tags of other tasks.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    versions = set()
    for tag in _tags(if_match):
        if not (len(tag) > 2 and tag[0] == tag[-1] == '"'):
            continue
        tag_id, _, version = tag[1:-1].rpartition(".")
        if tag_id == str(task_id) and version.isdigit():
            versions.add(int(version))
    return frozenset(versions)


def none_match(if_none_match: str | None, current: str) -> bool:
    """True when If-None-Match names the current ETag (weak comparison), or is `*`."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.removeprefix("W/") == current for tag in _tags(if_none_match))
