"""Constraints every stored string needs, whatever the field."""

from pydantic import AfterValidator


def refuse_nul(value: str) -> str:
    """Postgres text cannot store NUL characters: refuse them as invalid input, not a 500."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NoNul = AfterValidator(refuse_nul)
