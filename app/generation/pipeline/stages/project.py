"""A project's instructions (app/projects): first in the system prompt of every chat in the
project, before the chat's own or the mode's; sent with personal data redacted, as the rest of
the system prompt is. The input checks see them too (input_checks.py)."""

from app.generation.pipeline.stage import ReplyPlan, Stage
from app.guardrails.pipeline import GuardrailPipeline


class ProjectInstructions(Stage):
    name = "project_instructions"

    def __init__(self, guardrails: GuardrailPipeline) -> None:
        self.guardrails = guardrails

    async def compose(self, plan: ReplyPlan) -> None:
        if plan.project_instructions:
            text = self.guardrails.redact_for_upstream(plan.project_instructions, mode=plan.mode)
            plan.system_parts.append(text)
