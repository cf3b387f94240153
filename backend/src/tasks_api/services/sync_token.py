"""Sync tokens: a user's sync position, signed for that user like a list cursor.

The same format and key as list cursors (services/cursor.py), under a scope of their own:
a token is only good for its user's feed, and no cursor passes for a token or the reverse.
"""

from tasks_api.services.cursor import CursorSigner, InvalidCursor


def _scope(user_id: str) -> dict[str, str]:
    return {"user_id": user_id, "feed": "sync"}


def encode(signer: CursorSigner, user_id: str, seq: int) -> str:
    return signer.encode(_scope(user_id), seq)


def decode(signer: CursorSigner, user_id: str, token: str) -> int:
    """The position a token holds; InvalidCursor unless this API made it for this user."""
    seq = signer.decode(_scope(user_id), token)
    # bool is an int to Python, never a position we wrote.
    if type(seq) is not int or seq < 0:
        raise InvalidCursor
    return seq
