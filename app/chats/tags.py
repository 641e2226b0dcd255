"""Chat tags: short labels, normalised so that "Work", " work " and "WORK  " are one tag.

A tag is sent as 1 to 32 characters, not only spaces; it is stored with runs of whitespace made
one space, trimmed and lower-cased. A chat has at most 20, each once, kept sorted.
"""

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from app.core.text import NoNul

MAX_TAGS_PER_CHAT = 20
MAX_TAG_LENGTH = 32
# Stored length: lower-casing lengthens a few characters ("İ" becomes two).
STORED_TAG_LENGTH = 64


def normalise_tag(raw: str) -> str:
    """The stored form of a tag: whitespace runs made one space, trimmed, lower-case."""
    return " ".join(raw.split()).lower()[:STORED_TAG_LENGTH]


def _unique(tags: list[str]) -> list[str]:
    return sorted(set(tags))


Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG_LENGTH),
    NoNul,
    AfterValidator(normalise_tag),
    Field(description="1 to 32 characters; stored trimmed, lower-case, spaces collapsed."),
]
Tags = Annotated[
    list[Tag],
    Field(
        max_length=MAX_TAGS_PER_CHAT,
        description="At most 20 tags (a repeat counts once); stored sorted.",
    ),
    AfterValidator(_unique),
]
