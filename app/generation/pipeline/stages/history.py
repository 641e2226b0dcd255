"""The conversation as the upstream gets it: each message with its attachments, the user's
words with personal data redacted (PII_*; the stored messages keep the original)."""

from app.chats.models import Role
from app.generation.pipeline.stage import ReplyPlan, Stage
from app.generation.prompt import Turn
from app.guardrails.pipeline import GuardrailPipeline


class History(Stage):
    name = "history"

    def __init__(self, guardrails: GuardrailPipeline) -> None:
        self.guardrails = guardrails

    async def compose(self, plan: ReplyPlan) -> None:
        redact = self.guardrails.redact_for_upstream
        in_chat = plan.chat is not None
        plan.turns = [
            Turn(
                entry.role,
                redact(entry.content, mode=plan.mode) if entry.role == Role.USER else entry.content,
                plan.attachments.get(entry.id, ()),
                entry.id if in_chat else None,
                entry.tool_steps or (),
            )
            for entry in plan.history
        ]
