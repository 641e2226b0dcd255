"""Chat tags: short labels, normalised so that "Work", " work " and "WORK" are one tag.

A tag is 1 to 32 characters after trimming and lower-casing, made of letters, digits, spaces
(runs of them become one), `-`, `_` and `.`; a chat has at most 20, each once.
"""

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

MAX_TAGS_PER_CHAT = 20
MAX_TAG_LENGTH = 32
_SPACES = re.compile(r"\s+")
_TAG = re.compile(r"^[\w][\w .-]*$")
TAG_PATTERN = r"^\s*[\w][\w\s.-]*$"


def normalise_tag(raw: str) -> str:
    """The stored form of a tag, or a validation error saying why it is not one."""
    tag = _SPACES.sub(" ", raw).strip().lower()
    if not tag:
        raise PydanticCustomError("invalid_tag", "A tag must not be empty.")
    if len(tag) > MAX_TAG_LENGTH:
        raise PydanticCustomError(
            "invalid_tag", "A tag has at most {max} characters.", {"max": MAX_TAG_LENGTH}
        )
    if not _TAG.fullmatch(tag):
        raise PydanticCustomError(
            "invalid_tag",
            "A tag holds letters, digits, spaces, '-', '_' and '.', and starts with a letter or "
            "digit: '{tag}' does not.",
            {"tag": raw[:40]},
        )
    return tag


def _unique(tags: list[str]) -> list[str]:
    return sorted(set(tags))


Tag = Annotated[
    str,
    AfterValidator(normalise_tag),
    Field(
        min_length=1,
        max_length=100,
        description="Letters, digits, spaces, '-', '_', '.'; stored trimmed and lower-case, "
        "at most 32 characters.",
    ),
]
Tags = Annotated[
    list[Tag],
    Field(
        max_length=MAX_TAGS_PER_CHAT,
        description="At most 20 tags (repeats count once); stored sorted.",
    ),
    AfterValidator(_unique),
]
