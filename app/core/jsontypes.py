"""Field types that take JSON as JSON: pydantic's lax mode would read `true` as 1 and "1" as 1,
so a schema-violating body could pass as valid. Floats and booleans use pydantic's Strict types;
integers are `Annotated[int, Field(ge=..., le=...), JsonNumber]`, since JSON Schema counts 5.0 as
an integer (and so do clients). The bounds come before JsonNumber so that they stay on the
integer, and in the JSON schema as minimum and maximum."""

from typing import Any

from pydantic import BeforeValidator


def _refuse_bool_and_str(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number")
    return value


JsonNumber = BeforeValidator(_refuse_bool_and_str)
