"""Constraints every stored string needs, whatever the field."""

from typing import TypeVar

from pydantic import AfterValidator

T = TypeVar("T", str, str | None)


def refuse_nul(value: T) -> T:
    """Postgres text cannot store (or even compare with) NUL characters: refuse them as invalid
    input, not a 500."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NoNul = AfterValidator(refuse_nul)
