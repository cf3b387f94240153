"""Schemathesis over every operation of the live OpenAPI document, in process (ASGI) on the
test PostgreSQL, as a real user: no 5xx, responses and headers as documented, documented
statuses only, valid requests accepted and invalid ones refused, and the stateful run that
follows the document's links. specs/fuzzing.md says what it covers and why.

Deterministic in `make test` (a fixed seed, derandomized, few examples); `make fuzz` runs it
with FUZZ_EXAMPLES and FUZZ_SEED=random for much longer.
"""

import os
import random
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.python import asgi

from tasks_api.config import Settings
from tasks_api.main import create_app
from tests.support.auth import make_token

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
STATEFUL_STEPS = int(os.environ.get("FUZZ_STATEFUL_STEPS", "6"))
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "15"))
_SEED = os.environ.get("FUZZ_SEED", "20261202")
SEED = random.SystemRandom().randrange(2**32) if _SEED == "random" else int(_SEED)
DETERMINISTIC = _SEED != "random"
USER = "fuzz-user"
BACKEND = Path(__file__).resolve().parents[2]


def _config() -> dict[str, Any]:
    """tests/schemathesis.toml, shared with `st run`, with this run's user, seed and size.
    Every check is on (`checks.enabled`): the six the issue names and the rest."""
    config: dict[str, Any] = tomllib.loads((BACKEND / "tests" / "schemathesis.toml").read_text())
    token = make_token(USER, expires_in=timedelta(hours=24))
    return config | {
        "hooks": str(BACKEND / config["hooks"]),
        "auth": {"openapi": {"HTTPBearer": {"bearer": token}}},
        "parameters": {"path.user_id": USER},
        "seed": SEED,
        "generation": {
            "max-examples": EXAMPLES,
            "deterministic": DETERMINISTIC,
            "database": "none",
        },
        "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
    }


class _App:
    """The app under test, installed by the fixture below. The schema must exist when
    pytest collects (one test per operation), before there is a database to serve it."""

    target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


APP = _App()
# The document does not depend on settings: the one `app.openapi()` serves.
DOCUMENT = create_app(Settings(_env_file=None, environment="test")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(_config()))
schema.app = APP


@pytest.fixture(scope="module", autouse=True)
def _serve(settings: Settings) -> Iterator[None]:
    # Its own app: schemathesis runs ASGI apps (and their lifespan, hence the database pool)
    # on an event loop of its own, not the suite's.
    APP.target = create_app(settings)
    yield
    asgi.shutdown_lifespans()
    APP.target = None


@schema.parametrize()
def test_every_operation(case: schemathesis.Case) -> None:
    case.call_and_validate()


def test_stateful() -> None:
    """Create, then follow the document's links to the operations on that task."""
    workflow = schema.as_state_machine()
    settings = hypothesis.settings(
        max_examples=STATEFUL_EXAMPLES,
        stateful_step_count=STATEFUL_STEPS,
        derandomize=DETERMINISTIC,
        database=None,
        deadline=None,
        # As schemathesis runs state machines: generate only. A replay or a shrink meets a
        # server whose state has moved on (new ids, other pages).
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    for _ in range(1 if DETERMINISTIC else 5):
        try:
            workflow.run(settings=settings)
            return
        except FlakyStrategyDefinition:
            # The API's answers decide which steps can follow (a created task's id, a 404),
            # so the same draws can lead elsewhere the next time and Hypothesis stops with
            # this. It is no finding: a failed check raises its FailureGroup instead.
            # schemathesis's own runner starts a new run in this case; so does `make fuzz`.
            continue
