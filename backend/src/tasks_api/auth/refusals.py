"""Log lines for tokens refused because of how the API (or the issuer) is configured.

A wrong JWT_ISSUER makes every valid token a 401, and the client only sees `invalid_token`.
These lines tell an operator which check failed and what the API expected, once per reason
per interval so that a flood of refused tokens is a handful of lines. Never the token: only
the header's `alg`/`kid` and the (signature-checked) `iss`/`aud`, which are not secrets.
"""

import logging
import time
from collections.abc import Callable

logger = logging.getLogger("tasks_api.auth")

REPORT_INTERVAL_SECONDS = 60.0
# Values from a token are shown with repr() and cut: a log line is not a place for 5 KB.
MAX_VALUE_LENGTH = 200


def shown(value: object) -> str:
    """A token's value as a log line may carry it: quoted, escaped, bounded."""
    text = repr(value)
    if len(text) > MAX_VALUE_LENGTH:
        text = text[:MAX_VALUE_LENGTH] + "..."
    return text


class RefusalLog:
    """One warning per reason per `interval`; the refusals in between are counted."""

    def __init__(
        self,
        interval: float = REPORT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def report(self, reason: str, message: str, *args: object) -> None:
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < self._interval:
            self._since[reason] = self._since.get(reason, 0) + 1
            return
        self._last[reason] = now
        quiet = self._since.pop(reason, 0)
        suffix = f" ({quiet} more refused for this reason since the last line)" if quiet else ""
        logger.warning(
            "token refused [%s]: " + message + "%s",
            reason,
            *args,
            suffix,
        )
