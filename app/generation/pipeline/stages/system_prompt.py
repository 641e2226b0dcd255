"""The system prompt: the chat's own, else (plain chats) the user's preferred one, else the
mode's, rendered from its parameters (prompt_input.py); sent with personal data redacted, as the
user's messages are."""

from app.generation.pipeline.stage import ReplyPlan, Stage
from app.guardrails.pipeline import GuardrailPipeline


class SystemPrompt(Stage):
    name = "system_prompt"

    def __init__(self, guardrails: GuardrailPipeline) -> None:
        self.guardrails = guardrails

    async def compose(self, plan: ReplyPlan) -> None:
        text, _written = plan.system_prompt()
        plan.system_parts.append(self.guardrails.redact_for_upstream(text, mode=plan.mode))
