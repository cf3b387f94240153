"""The change feed's rules: tokens, the 400 and 410 cases, paging; one transaction a page."""

from dataclasses import dataclass
from typing import Any

from tasks_api.database import Database
from tasks_api.errors import SyncTokenExpired, ValidationFailed
from tasks_api.repositories import change_repository
from tasks_api.services import sync_token
from tasks_api.services.cursor import CursorSigner, InvalidCursor

_BAD_TOKEN = "is not a sync token of yours: pass the meta.sync_token of a list or changes page"
_FUTURE_TOKEN = (
    "is ahead of your data (the data was restored or reset): reload the list and follow its "
    "meta.sync_token"
)


@dataclass(frozen=True)
class FeedPage:
    # (position, change object) in position order.
    items: list[tuple[int, dict[str, Any]]]
    # Covers every item: the last one's when more follow, else the snapshot's position.
    position: int
    has_more: bool


def parse_token(signer: CursorSigner, user_id: str, token: str, field: str) -> int:
    try:
        return sync_token.decode(signer, user_id, token)
    except InvalidCursor as error:
        raise ValidationFailed.field(field, _BAD_TOKEN) from error


async def read_page(
    database: Database, user_id: str, since: int, limit: int, *, field: str = "since"
) -> FeedPage:
    """The changes after `since`; a 400 naming `field` for a token from the future, a 410
    for one older than the tombstones kept."""
    async with database.transaction(user_id) as tx:
        changes = await change_repository.read(tx, user_id, since, limit + 1)
    if since > changes.position:
        raise ValidationFailed.field(field, _FUTURE_TOKEN)
    # Tombstones up to `purged` are gone: a token below it may have missed a delete.
    if since < changes.purged:
        raise SyncTokenExpired
    has_more = len(changes.items) > limit
    items = changes.items[:limit]
    position = items[-1][0] if has_more else changes.position
    return FeedPage(items, position, has_more)


async def current_position(database: Database, user_id: str) -> int:
    async with database.transaction(user_id) as tx:
        return await change_repository.position(tx, user_id)


async def changes(
    database: Database, signer: CursorSigner, user_id: str, since: str | None, limit: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A page of `GET /changes` and its meta; without `since`, none and the current token."""
    if since is None:
        page = FeedPage([], await current_position(database, user_id), has_more=False)
    else:
        position = parse_token(signer, user_id, since, "since")
        page = await read_page(database, user_id, position, limit)
    meta = {
        "sync_token": sync_token.encode(signer, user_id, page.position),
        "has_more": page.has_more,
        "limit": limit,
    }
    return [change for _, change in page.items], meta
