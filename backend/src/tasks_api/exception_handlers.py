"""Every error leaves as the error envelope; expected conditions are never 500s."""

import logging

import asyncpg
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.routing import Match

from tasks_api import responses
from tasks_api.errors import (
    AppError,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
    validation_details,
)
from tasks_api.schemas.text import UNSTORABLE, is_storable

logger = logging.getLogger("tasks_api.errors")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return responses.error(request, exc)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return responses.error(request, ValidationFailed(validation_details(exc.errors())))


def _allowed_methods(request: Request) -> str:
    """Every method the path answers (RFC 9110): Starlette's 405 names only the first
    matching route's, so GET alone for a path that also takes PUT, PATCH and DELETE."""
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: AppError
    if exc.status_code == 404:
        error = NotFound("No such route.")
    elif exc.status_code == 405:
        error = MethodNotAllowed(headers={"Allow": _allowed_methods(request)})
    else:
        error = AppError(str(exc.detail))
        error.status_code = exc.status_code  # type: ignore[misc]
    return responses.error(request, error)


def _is_unavailable(exc: BaseException) -> bool:
    """The database is unreachable, restarting, or too slow: the client may retry."""
    if isinstance(exc, sa_exc.TimeoutError | OSError | TimeoutError | sa_exc.DisconnectionError):
        return True
    if _is_connection_failure(exc):  # asyncpg's own, from the request path
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        # The driver's own error: SQLAlchemy's adapter keeps asyncpg's as its cause.
        orig = exc.orig
        return _is_connection_failure(orig) or _is_connection_failure(
            getattr(orig, "__cause__", None)
        )
    return False


def _is_connection_failure(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    if isinstance(exc, OSError | TimeoutError):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    # 08: connection exception, 57P0x: shutdown / cannot connect now, 57014: timeout,
    # 53: out of resources (too many connections).
    if sqlstate.startswith(("08", "57P0", "53")) or sqlstate == "57014":
        return True
    # asyncpg's client-side error for a connection the server has dropped.
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


# character_not_in_repertoire (U+0000 in text), untranslatable_character.
_UNSTORABLE_SQLSTATES = frozenset({"22021", "22P05"})


def _is_unstorable(exc: BaseException) -> bool:
    """Text the database cannot store reached the driver: asyncpg refuses an unpaired
    surrogate itself (DataError from a UnicodeEncodeError), PostgreSQL refuses U+0000."""
    orig = getattr(exc, "orig", None)  # SQLAlchemy's wrapper keeps the driver's error
    for error in (exc, orig, getattr(orig, "__cause__", None)):
        if error is None:
            continue
        if getattr(error, "sqlstate", None) in _UNSTORABLE_SQLSTATES:
            return True
        # asyncpg's DataError ("invalid input for query argument") from the encoder's error.
        if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError) and isinstance(
            error.__cause__, UnicodeEncodeError
        ):
            return True
    return False


def _unstorable_field(request: Request) -> str:
    for name, value in request.query_params.multi_items():
        if not is_storable(value):
            return name
    return "body"


async def _database_error(request: Request, exc: Exception) -> Response:
    if _is_unavailable(exc):
        logger.warning("database unavailable: %s", type(exc).__name__)
        return responses.error(request, ServiceUnavailable())
    if _is_unstorable(exc):
        # The last line of defence: input parsing refuses such text first (schemas.text), so
        # reaching here means a field escaped it. Still the client's input, still a 400.
        logger.warning("unstorable text reached the database: %s", type(exc).__name__)
        return responses.error(
            request, ValidationFailed.field(_unstorable_field(request), UNSTORABLE)
        )
    raise exc


def register(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http_exception)
    # Requests run asyncpg directly (database.Transaction); SQLAlchemy's pool and the
    # health check still raise SQLAlchemy's errors.
    for error in (
        sa_exc.SQLAlchemyError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        OSError,
        TimeoutError,
    ):
        app.add_exception_handler(error, _database_error)
