"""Chat modes: prompt templates with a parameter schema. Adding a mode is adding one declaration.

A declaration names the mode, describes it for the UI, gives a pydantic model for its
parameters (validated when a chat is created or updated, and published as JSON Schema at
`GET /api/modes`) and a system prompt template rendered from the validated parameters.
"""

import textwrap
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from app.chats.errors import InvalidModeParams, UnknownMode
from app.core.errors import FieldError
from app.core.jsontypes import JsonNumber
from app.core.text import NoNul

ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul
]


class ModeParams(BaseModel):
    """Base of every mode's parameters: unknown keys are refused, so typos are reported."""

    model_config = ConfigDict(extra="forbid")

    def prompt_values(self) -> dict[str, Any]:
        """Values the template may use; override to add derived text (lists, optional parts)."""
        return self.model_dump()


@dataclass(frozen=True)
class Mode:
    name: str
    title: str
    description: str
    params: type[ModeParams]
    # A str.format template over params.prompt_values(); common indentation is removed.
    template: str
    # Made for images: needs a vision model, and an image (stateless generation checks).
    vision: bool = False

    def validate_params(self, raw: dict[str, Any] | None) -> ModeParams:
        """Validates raw parameters, naming each bad field as `body.mode_params.<field>`."""
        try:
            return self.params.model_validate(raw or {})
        except ValidationError as exc:
            details = [
                FieldError(
                    field=".".join(["body", "mode_params", *(str(p) for p in err["loc"])]),
                    message=err["msg"],
                    type=err["type"],
                )
                for err in exc.errors()
            ]
            summary = "; ".join(f"{d.field}: {d.message}" for d in details[:3])
            raise InvalidModeParams(
                f"Invalid parameters for mode '{self.name}': {summary}", details=details
            ) from exc

    def render(self, params: ModeParams | dict[str, Any] | None = None) -> str:
        """The system prompt for these parameters."""
        if not isinstance(params, ModeParams):
            params = self.validate_params(params)
        return textwrap.dedent(self.template).strip().format_map(params.prompt_values())


# Every declared mode by name, in declaration order: GET /api/modes, validation and OpenAPI read it.
MODES: dict[str, Mode] = {}


def declare(mode: Mode) -> Mode:
    """Registers a mode; a module-level `declare(Mode(...))` is all a new mode needs."""
    if mode.name in MODES:
        raise ValueError(f"mode {mode.name!r} is declared twice")
    MODES[mode.name] = mode
    return mode


# --- chat --------------------------------------------------------------------------------------


class ChatParams(ModeParams):
    pass


CHAT = declare(
    Mode(
        name="chat",
        title="Chat",
        description="A general assistant for open conversation.",
        params=ChatParams,
        template="You are a helpful, honest assistant. Answer clearly and concisely.",
    )
)


# --- email -------------------------------------------------------------------------------------

EMAIL_LENGTHS = {
    "short": "under 100 words",
    "medium": "100 to 200 words",
    "long": "200 to 400 words",
}


class EmailParams(ModeParams):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "purpose": "Ask for a one-week extension of the report deadline",
                    "recipient": "my manager, Dana",
                    "key_points": ["the data arrived late", "a draft is ready on Friday"],
                    "tone": "formal",
                    "length": "short",
                }
            ]
        }
    )

    purpose: ShortText = Field(description="What the email should achieve.")
    recipient: ShortText | None = Field(default=None, description="Who it is for.")
    key_points: list[ShortText] = Field(
        default_factory=list, max_length=20, description="Points the email must make."
    )
    tone: Literal["formal", "friendly", "persuasive", "apologetic", "neutral"] = "neutral"
    length: Literal["short", "medium", "long"] = "medium"

    def prompt_values(self) -> dict[str, Any]:
        points = "\n".join(f"- {point}" for point in self.key_points) or "- (none given)"
        return {
            **self.model_dump(),
            "recipient": self.recipient or "not specified",
            "key_points": points,
            "length": EMAIL_LENGTHS[self.length],
        }


EMAIL = declare(
    Mode(
        name="email",
        title="Email writer",
        description="Writes an email from its purpose, recipient, key points, tone and length.",
        params=EmailParams,
        template="""
    You write emails. Write one email with a subject line and a body, ready to send.
    Purpose: {purpose}
    Recipient: {recipient}
    Key points to cover:
    {key_points}
    Tone: {tone}. Length: {length}.
    Reply with the email only.
    """,
    )
)


# --- similar questions -------------------------------------------------------------------------


class SimilarQuestionsParams(ModeParams):
    count: Annotated[int, Field(ge=1, le=20), JsonNumber] = Field(
        default=5, description="How many questions to write."
    )
    question: (
        Annotated[
            str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), NoNul
        ]
        | None
    ) = Field(default=None, description="The question to start from; otherwise the user's message.")

    def prompt_values(self) -> dict[str, Any]:
        given = (
            f"The question: {self.question}"
            if self.question
            else ("The question is the user's message.")
        )
        return {**self.model_dump(), "question": given}


SIMILAR_QUESTIONS = declare(
    Mode(
        name="similar_questions",
        title="Similar questions",
        description="Writes questions similar to a given one, e.g. for FAQs or test sets.",
        params=SimilarQuestionsParams,
        template="""
    Write exactly {count} questions that ask the same thing as the given question in different
    words, one per line, numbered, with no other text.
    {question}
    """,
    )
)


# --- summarize ---------------------------------------------------------------------------------

SUMMARY_LENGTHS = {"short": "2 to 3 sentences", "medium": "one paragraph", "long": "a page"}


class SummarizeParams(ModeParams):
    length: Literal["short", "medium", "long"] = "medium"
    style: Literal["paragraph", "bullet_points"] = "paragraph"

    def prompt_values(self) -> dict[str, Any]:
        return {
            "length": SUMMARY_LENGTHS[self.length],
            "style": "bullet points" if self.style == "bullet_points" else "prose",
        }


SUMMARIZE = declare(
    Mode(
        name="summarize",
        title="Summarize",
        description="Summarizes the text or conversation it is given.",
        params=SummarizeParams,
        template="""
    Summarize the text the user gives you, keeping names, numbers and decisions.
    Length: {length}. Format: {style}. Reply with the summary only.
    """,
    )
)


# --- image ---------------------------------------------------------------------------------

IMAGE_TASKS = {
    "describe": (
        "Describe the attached images in detail: what they show, their layout, colours and any "
        "text in them. If the user asks something, answer that as well."
    ),
    "extract_text": (
        "Transcribe all the text visible in the attached images, exactly as written, keeping "
        "its reading order, line breaks and tables (as Markdown). Add nothing else; say so if "
        "an image has no text."
    ),
    "answer": (
        "Answer the user's question about the attached images, using only what the images "
        "show; say so when they do not show the answer."
    ),
}


class ImageParams(ModeParams):
    model_config = ConfigDict(json_schema_extra={"examples": [{"task": "extract_text"}]})

    task: Literal["describe", "extract_text", "answer"] = Field(
        default="describe",
        description="describe the images, extract_text (transcribe it), or answer a question "
        "about them.",
    )

    def prompt_values(self) -> dict[str, Any]:
        return {"instructions": IMAGE_TASKS[self.task]}


IMAGE = declare(
    Mode(
        name="image",
        title="Image processing",
        description="Describes images, extracts their text, or answers questions about them. "
        "Needs a vision model and an attached image.",
        params=ImageParams,
        template="""
    You look at images the user attaches. {instructions}
    """,
        vision=True,
    )
)


DEFAULT_MODE = CHAT.name


def get_mode(name: str) -> Mode:
    try:
        return MODES[name]
    except KeyError:
        raise UnknownMode(name, list(MODES)) from None
