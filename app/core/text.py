"""Constraints every stored string needs, whatever the field."""

from typing import Any, TypeVar

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

T = TypeVar("T", str, str | None)

# What the OpenAPI schema says of such strings, so clients (and fuzzers) know before they send.
NO_NUL_PATTERN = "^[^\\u0000]*$"

# The same, for fields stripped before their minimum length is checked: something besides spaces.
# The class is exactly what str.strip() removes, plus NUL, spelled out: ECMA-262's \s, which
# clients and fuzzers apply, differs from Python's (it lacks U+001C..U+001F and U+0085, and has
# U+FEFF). tests/core/test_nul.py checks it against str.isspace().
STRIPPED_CLASS = (
    "\\u0000\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029"
    "\\u202f\\u205f\\u3000"
)
NOT_BLANK_PATTERN = f"^[^\\u0000]*[^{STRIPPED_CLASS}][^\\u0000]*$"


def refuse_nul(value: T) -> T:
    """Postgres text cannot store (or even compare with) NUL characters: refuse them as invalid
    input, not a 500."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class _NoNul:
    """`Annotated[str, NoNul]`: refuses NUL characters, and says so in the JSON schema."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(refuse_nul, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        stripped = _strips_whitespace(schema)
        for branch in [json_schema, *json_schema.get("anyOf", [])]:
            if branch.get("type") == "string":
                blank_refused = stripped and branch.get("minLength", 0) >= 1
                branch.setdefault("pattern", NOT_BLANK_PATTERN if blank_refused else NO_NUL_PATTERN)
        return json_schema


def _strips_whitespace(schema: Any) -> bool:
    """Whether a core schema strips whitespace off its string before checking it."""
    if isinstance(schema, dict):
        if schema.get("strip_whitespace") is True:
            return True
        return any(_strips_whitespace(value) for value in schema.values())
    if isinstance(schema, list):
        return any(_strips_whitespace(value) for value in schema)
    return False


NoNul = _NoNul()
