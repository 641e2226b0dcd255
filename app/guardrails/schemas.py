import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GuardrailPoint = Literal["input", "untrusted", "output"]
GuardrailAction = Literal["block", "redact", "flag", "fail_open", "fail_closed"]


class ModeGuardrails(BaseModel):
    """The checks that run for a mode at each point (GET /api/modes)."""

    input: list[str] = Field(description="On the user's message or prompt, before the upstream.")
    untrusted: list[str] = Field(description="On documents and retrieved text entering the prompt.")
    output: list[str] = Field(description="On the reply as it streams, held back until checked.")


class ModerationEventRead(BaseModel):
    """One thing a guardrail did. It never holds the personal data it found."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    user_id: uuid.UUID | None
    chat_id: uuid.UUID | None
    message_id: uuid.UUID | None
    generation_id: uuid.UUID | None
    point: GuardrailPoint
    check: str = Field(description="max_input_chars, blocked_patterns, pii, injection, guard_model")
    category: str = Field(
        description="What was found: a PII kind (email, phone, payment_card, iban, secret), "
        "blocked_pattern, prompt_injection, too_large, the guard model's categories, or "
        "unreachable."
    )
    action: GuardrailAction
    detail: dict[str, Any] | None = Field(description="Counts, the source and file name; no data.")
    blocked_text: str | None = Field(
        description="A blocked reply's text (personal data replaced by placeholders), for "
        "administrators only."
    )


class ModerationPage(BaseModel):
    items: list[ModerationEventRead]
    total: int
    limit: int
    offset: int
