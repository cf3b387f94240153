"""Every error leaves as the error envelope; expected conditions are never 500s."""

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException

from tasks_api import responses
from tasks_api.errors import (
    AppError,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
    validation_details,
)

logger = logging.getLogger("tasks_api.errors")


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return responses.error(request, exc)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return responses.error(request, ValidationFailed(validation_details(exc.errors())))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: AppError
    if exc.status_code == 404:
        error = NotFound("No such route.")
    elif exc.status_code == 405:
        error = MethodNotAllowed(headers=exc.headers)
    else:
        error = AppError(str(exc.detail))
        error.status_code = exc.status_code  # type: ignore[misc]
    return responses.error(request, error)


def _is_unavailable(exc: Exception) -> bool:
    """The database is unreachable, restarting, or too slow: the client may retry."""
    if isinstance(exc, sa_exc.TimeoutError | OSError | TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        # 08: connection exception, 57P0x: shutdown / cannot connect now, 57014: timeout,
        # 53300: too many connections.
        return sqlstate.startswith(("08", "57P0", "53")) or sqlstate == "57014"
    return isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError)


async def _database_error(request: Request, exc: Exception) -> Response:
    if _is_unavailable(exc):
        logger.warning("database unavailable: %s", type(exc).__name__)
        return responses.error(request, ServiceUnavailable())
    raise exc


def register(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http_exception)
    for error in (sa_exc.SQLAlchemyError, OSError, TimeoutError):
        app.add_exception_handler(error, _database_error)
