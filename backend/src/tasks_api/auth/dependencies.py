from typing import Annotated

from fastapi import Depends, Request

from tasks_api.auth.tokens import MissingToken, TokenVerifier
from tasks_api.errors import Forbidden

# The bearer scheme as OpenAPI shows it (main._openapi adds it to every /api operation).
# It is not a FastAPI security dependency: one dependency reads the header, checks the token
# and the URL's user, where HTTPBearer would be another to resolve on every request.
BEARER_SCHEME = {
    "HTTPBearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT from Better Auth (`/api/auth/token`) or "
        "`tasks-api token --user NAME`.",
    }
}


# The URL's `{user_id}`, as OpenAPI shows it (main._openapi adds it where BEARER_SCHEME
# goes). Read from the matched path by the dependency below rather than declared as a
# FastAPI parameter: every declared parameter is looked up and validated per request again.
USER_ID_PARAMETER = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "title": "User Id"},
}


async def get_current_user_id(request: Request) -> str:
    """The URL's user, once the token proved it is the caller: 401, then 403, before any
    I/O and whatever else is wrong with the request."""
    user_id: str = request.path_params["user_id"]
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if not token or scheme.lower() != "bearer":
        raise MissingToken
    verifier: TokenVerifier = request.app.state.token_verifier
    verified = await verifier.verify_token(token)
    token_user_id = verified.user_id
    request.state.user_id = token_user_id  # the access log keeps only a keyed hash of it
    request.state.token_expires_at = verified.expires_at  # an event stream ends then
    if user_id != token_user_id:
        raise Forbidden
    return user_id


CurrentUserId = Annotated[str, Depends(get_current_user_id)]
