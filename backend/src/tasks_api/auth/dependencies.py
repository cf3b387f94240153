from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tasks_api.auth.tokens import MissingToken, TokenVerifier
from tasks_api.errors import Forbidden

_bearer = HTTPBearer(
    auto_error=False,
    description="A JWT from Better Auth (`/api/auth/token`) or `tasks-api token --user NAME`.",
)


async def get_token_user_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None:
        raise MissingToken
    verifier: TokenVerifier = request.app.state.token_verifier
    user_id = await verifier.verify(credentials.credentials)
    request.state.user_id = user_id  # the access log keeps only a keyed hash of it
    return user_id


async def get_current_user_id(
    user_id: str, token_user_id: Annotated[str, Depends(get_token_user_id)]
) -> str:
    """The URL's user, once the token proved it is the caller; checked before any I/O."""
    if user_id != token_user_id:
        raise Forbidden
    return user_id


CurrentUserId = Annotated[str, Depends(get_current_user_id)]
