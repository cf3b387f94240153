import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

TEST_SECRET = "test-secret-" + "x" * 40


def make_token(
    sub: str | None,
    *,
    secret: str = TEST_SECRET,
    algorithm: str = "HS256",
    expires_in: timedelta | None = timedelta(minutes=15),
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = datetime.now(UTC)
    payload: dict[str, Any] = {"iat": now, **claims}
    if sub is not None:
        payload["sub"] = sub
    if expires_in is not None:
        payload["exp"] = now + expires_in
    return jwt.encode(payload, secret, algorithm=algorithm, headers=headers)


@dataclass
class User:
    """A fresh user per test: each test sees only its own tasks, with no cleanup."""

    id: str = field(default_factory=lambda: "user-" + secrets.token_urlsafe(12))

    @property
    def token(self) -> str:
        return make_token(self.id)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def tasks_url(self) -> str:
        return f"/api/{self.id}/tasks"

    def task_url(self, task_id: str) -> str:
        return f"/api/{self.id}/tasks/{task_id}"
