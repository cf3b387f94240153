"""Text as every input field takes it: storable by PostgreSQL, trimmed as JavaScript trims.

PostgreSQL's text cannot hold U+0000, and UTF-8 (the database's encoding) cannot hold an
unpaired surrogate. Both are refused here, where input is parsed, with a 400 naming the field,
rather than by the driver halfway through a transaction. The rules are written once as JSON
Schema too (`pattern`), so the OpenAPI document states what the server accepts.
"""

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, GetJsonSchemaHandler, StrictStr
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

UNSTORABLE = "must not contain U+0000 or an unpaired surrogate (text PostgreSQL cannot store)"

# ECMAScript's WhiteSpace and LineTerminator: what JavaScript's String.prototype.trim() and
# the `\s` of a JSON Schema pattern take. Python's str.strip() differs (it takes U+001C-U+001F
# and U+0085, not U+FEFF), so the server trims with this exact set and the document spells it
# out rather than writing `\s`, which Python's and ECMAScript's regexes read differently.
WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_WHITESPACE_CLASS = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# JSON Schema patterns (ECMAScript syntax that Python's `re` reads the same way).
NO_NUL_PATTERN = r"^[^\u0000]*$"
NOT_BLANK_PATTERN = rf"^[^\u0000]*[^{_WHITESPACE_CLASS}\u0000][^\u0000]*$"


def is_storable(value: str) -> bool:
    if value.isascii():
        return "\x00" not in value
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a surrogate with no partner
        return False
    return True


def _storable(value: str) -> str:
    if not is_storable(value):
        raise ValueError(UNSTORABLE)
    return value


def trim(value: str) -> str:
    return value.strip(WHITESPACE)


class Documented:
    """Keywords for the document only (a `pattern`, `uniqueItems`): validators check the same
    rule with a message that says why, where a failed regex would only say that it failed."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


# Any text field of any input: a body field, a query parameter.
Text = Annotated[StrictStr, AfterValidator(_storable), Documented(pattern=NO_NUL_PATTERN)]


def not_blank_text(max_length: int, *, as_sent: bool = False) -> Any:
    """Text that is not whitespace only, stored trimmed, of 1 to `max_length` code points
    after trimming (the contract's title and tags), or `as_sent` as well (a query's tag,
    whose length bounds the URL).

    The document says `maxLength` of the text as sent, which is stricter than the server
    for padded text: JSON Schema cannot count after trimming (a bounded pattern could, but
    schemathesis's boundary-value generator cannot draw from one). specs/input-rules.md.
    """

    def _trimmed(value: str) -> str:
        value = trim(value)
        if not value:
            raise ValueError("must not be empty or whitespace only")
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters after trimming")
        return value

    length = Field(min_length=1, max_length=max_length if as_sent else None)
    return Annotated[
        StrictStr,
        length,
        AfterValidator(_storable),
        AfterValidator(_trimmed),
        Documented(maxLength=max_length, pattern=NOT_BLANK_PATTERN),
    ]


def unstorable_fields(value: Any, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Dotted paths of the strings PostgreSQL cannot store anywhere in a parsed input: the
    net under every body model, also those with a text field not declared as `Text`."""
    if isinstance(value, str):
        if not is_storable(value):
            yield ".".join(path) or "body"
    elif isinstance(value, BaseModel):
        for name in value.model_fields_set:
            yield from unstorable_fields(getattr(value, name), (*path, name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from unstorable_fields(item, (*path, str(index)))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from unstorable_fields(item, (*path, str(key)))
