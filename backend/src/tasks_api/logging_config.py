"""Logging, configured once per process: one line per record, JSON in production, no secrets."""

import hashlib
import logging
import re
import sys
import time
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import orjson

from tasks_api.config import Settings

ACCESS_LOGGER = "tasks_api.access"
ERROR_LOGGER = "tasks_api.errors"
HANDLER_NAME = "tasks_api"
# The structured fields a record may carry (as `extra`), in output order.
FIELDS = ("request_id", "method", "route", "status", "duration_ms", "user")
# In text, an access record's message already says method, route, status and duration.
_TEXT_FIELDS = ("request_id", "user")
_MIN_SECRET_LENGTH = 8
_REDACTED = "[REDACTED]"

# What exception text is known to carry from a request: tokens (a JWS/JWE starts with the
# base64 of '{"'), Authorization values, SQLAlchemy's bound parameters and pydantic's
# offending input (both can hold the request body).
_SCRUB = (
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*"), _REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s'\",;]+"), rf"\1 {_REDACTED}"),
    (re.compile(r"^\[parameters: .*$", re.MULTILINE), f"[parameters: {_REDACTED}]"),
    (re.compile(r"input_value=.*?, input_type="), f"input_value={_REDACTED}, input_type="),
    (re.compile(r"'input': .*$", re.MULTILINE), f"'input': {_REDACTED}"),
)


class Redactor(logging.Filter):
    """Scrubs exception text and messages before any handler (and formatter) sees them.

    On a logger it protects every handler the record reaches, pytest's and an operator's
    too; on our handler it covers the records of every other library. Access records are
    built from safe fields only and pass untouched, so the hot path pays nothing.
    """

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        literal = "|".join(re.escape(secret) for secret in sorted(secrets, key=len, reverse=True))
        self._secrets = re.compile(literal) if literal else None

    def scrub(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(_REDACTED, text)
        for pattern, replacement in _SCRUB:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == ACCESS_LOGGER:
            return True
        if record.exc_info and not record.exc_text:
            # Formatters reuse `exc_text`, so the raw traceback text is never rendered.
            # Plain tracebacks carry source lines, not locals; the scrub is for messages.
            record.exc_text = self.scrub(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call is the logging module's to report, not ours
            return True
        record.msg, record.args = self.scrub(message), None
        return True


_FORMATTER = logging.Formatter()


class _Timestamps:
    """ISO 8601 UTC with milliseconds; the second's prefix is reused across records."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._timestamp = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = record.__dict__
        for name in FIELDS:
            value = fields.get(name)
            if value is not None:
                payload[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = record.stack_info
        return orjson.dumps(payload, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s  %(message)s")
        self.default_time_format = "%H:%M:%S"
        self.default_msec_format = "%s.%03d"

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = record.__dict__
        context = [f"{name}={fields[name]}" for name in _TEXT_FIELDS if fields.get(name)]
        return f"{line}  {' '.join(context)}" if context else line


def _secrets(settings: Settings) -> tuple[str, ...]:
    values = [
        secret.get_secret_value()
        for secret in (settings.jwt_secret, settings.log_user_key)
        if secret is not None
    ]
    if settings.database_url is not None:
        password = urlsplit(settings.database_url.get_secret_value()).password
        if password:
            values += [password, unquote(password)]
    # A short value would redact ordinary words; real secrets are long.
    return tuple({value for value in values if len(value) >= _MIN_SECRET_LENGTH})


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> None:
    """Route every logger through one handler on the root; safe to call again (tests do)."""
    log_format = settings.log_format
    if log_format is None:
        log_format = "text" if settings.environment == "development" else "json"
    redactor = Redactor(_secrets(settings))
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(redactor)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())

    errors = logging.getLogger(ERROR_LOGGER)
    for old_filter in [f for f in errors.filters if isinstance(f, Redactor)]:
        errors.removeFilter(old_filter)
    errors.addFilter(redactor)

    # However uvicorn was started, its lines go through our handler, and its access log
    # (raw paths with user ids, query strings) is off: uvicorn skips it when the logger
    # has no handlers. Ours logs the route template instead.
    server = logging.getLogger("uvicorn")
    server.handlers.clear()
    server.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False


_USER_KEY_PERSON = b"tasks-api/user"


def user_reference_key(settings: Settings) -> bytes:
    """The key of `user_reference`, the same on every instance with the same settings."""
    if settings.log_user_key is not None:
        material = settings.log_user_key.get_secret_value()
    elif settings.jwt_secret is not None:
        material = settings.jwt_secret.get_secret_value()
    else:
        # Public, so a reference can be checked against a guessed id: set LOG_USER_KEY.
        material = settings.jwks_url or ""
        if settings.is_production:
            logging.getLogger("tasks_api").warning(
                "LOG_USER_KEY is not set: user references in logs are keyed with JWKS_URL"
            )
    # Derived, never the JWT secret itself: one key, one purpose.
    return hashlib.blake2b(material.encode(), digest_size=32, person=_USER_KEY_PERSON).digest()


def user_reference(key: bytes, user_id: str) -> str:
    """A keyed hash of the user id: lines of one user can be correlated, not reversed."""
    return hashlib.blake2b(user_id.encode(), key=key, digest_size=8).hexdigest()
