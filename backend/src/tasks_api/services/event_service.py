"""Live changes: a stream replays the feed from a token, then follows it as the listener
wakes it. Every check (token, stream limit, 410) happens before the stream starts."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sse_starlette import ServerSentEvent

from tasks_api.change_hub import ChangeHub, Subscription
from tasks_api.database import Database
from tasks_api.errors import AppError
from tasks_api.repositories import listener_repository
from tasks_api.responses import dumps
from tasks_api.services import sync_service, sync_token
from tasks_api.services.cursor import CursorSigner
from tasks_api.services.sync_service import FeedPage

logger = logging.getLogger(__name__)

# Changes read per transaction; a longer backlog is read in turn, page after page.
PAGE_SIZE = 100
SEPARATOR = "\n"


@dataclass(frozen=True)
class StreamContext:
    database: Database
    hub: ChangeHub
    signer: CursorSigner
    user_id: str
    # When the bearer token expires (Unix seconds): the stream ends then.
    expires_at: float
    keepalive_seconds: float


async def open_stream(
    context: StreamContext, resume: str | None, field: str
) -> tuple[Subscription, AsyncIterator[ServerSentEvent]]:
    """The stream's place and its events; raises 400, 429 or 410 before anything is sent.

    The place is taken before the first read: a change committed after that read wakes
    the stream, so nothing falls between the replay and the live part.
    """
    since = None
    if resume is not None:
        since = sync_service.parse_token(context.signer, context.user_id, resume, field)
    subscription = context.hub.open(context.user_id)
    try:
        await _register(context)
        if since is None:
            position = await sync_service.current_position(context.database, context.user_id)
            first = FeedPage([], position, has_more=False)
        else:
            first = await sync_service.read_page(
                context.database, context.user_id, since, PAGE_SIZE, field=field
            )
    except BaseException:
        subscription.close()
        raise
    return subscription, _events(context, subscription, first)


async def _register(context: StreamContext) -> None:
    """This instance's row in task_listeners, before the first read: from its commit on,
    every write of the user notifies (specs/sync.md, "Listeners")."""
    hub, database, user_id = context.hub, context.database, context.user_id
    async with hub.registration(user_id), database.transaction(user_id) as tx:
        await listener_repository.register(tx, user_id, hub.instance)


_unregistering: set[asyncio.Task[None]] = set()


def track_listeners(hub: ChangeHub, database: Database) -> None:
    """When the instance's last stream of a user closes, its task_listeners row goes."""
    hub.on_user_idle = lambda user_id: _unregister_later(database, hub, user_id)


def _unregister_later(database: Database, hub: ChangeHub, user_id: str) -> None:
    task = asyncio.get_running_loop().create_task(_unregister(database, hub, user_id))
    _unregistering.add(task)  # a reference until it is done
    task.add_done_callback(_unregistering.discard)


async def _unregister(database: Database, hub: ChangeHub, user_id: str) -> None:
    """The user's last stream here closed: writes of the user need not notify any more, unless
    a stream opened again meanwhile. Best effort: a row left behind (a crash, a database
    outage) only costs that user's writes a NOTIFY."""
    async with hub.registration(user_id):
        if hub.has_streams(user_id):
            return
        try:
            async with database.transaction(user_id) as tx:
                await listener_repository.unregister(tx, user_id, hub.instance)
        except Exception as error:
            logger.warning("could not unregister a listener: %r", error)


async def _events(
    context: StreamContext, subscription: Subscription, page: FeedPage
) -> AsyncIterator[ServerSentEvent]:
    user_id = context.user_id
    try:
        while True:
            for seq, change in page.items:
                yield ServerSentEvent(
                    data=dumps(change).decode(),
                    event=change["type"],
                    id=sync_token.encode(context.signer, user_id, seq),
                    sep=SEPARATOR,
                )
            if not page.has_more:
                while not (woken := await _wait(context, subscription)):
                    if woken is None:
                        return  # the token expired or the server is shutting down
                    yield ServerSentEvent(comment="keep-alive", sep=SEPARATOR)
                subscription.woken.clear()  # before the read: a later commit wakes it again
            try:
                async with context.hub.reads:
                    page = await sync_service.read_page(
                        context.database, user_id, page.position, PAGE_SIZE
                    )
            except AppError as error:
                # A 410 or 503 can no longer be answered as such: the stream ends, and the
                # client's reconnect with Last-Event-ID gets the status.
                logger.info("event stream ended: %s", error.code)
                return
            except Exception as error:  # the database went away mid-stream: the same
                logger.warning("event stream ended: %r", error)
                return
    finally:
        subscription.close()


async def _wait(context: StreamContext, subscription: Subscription) -> bool | None:
    """True when woken, False after the keep-alive interval, None when the stream ends."""
    if subscription.ended:
        return None
    remaining = context.expires_at - time.time()
    if remaining <= 0:
        return None
    try:
        async with asyncio.timeout(min(context.keepalive_seconds, remaining)):
            await subscription.woken.wait()
    except TimeoutError:
        return None if time.time() >= context.expires_at else False
    return None if subscription.ended else True
