"""The guardrails' check on the reply's text as it streams (app/guardrails/output.py): text
reaches the client only once the check released it (generation/output_check.py)."""

from app.generation.output_check import checked
from app.generation.pipeline.stage import ReplyPlan, Stage, UpstreamEvents
from app.guardrails.pipeline import GuardrailPipeline


class OutputGuard(Stage):
    name = "output_guard"

    def __init__(self, guardrails: GuardrailPipeline) -> None:
        self.guardrails = guardrails

    def filter(self, plan: ReplyPlan, events: UpstreamEvents) -> UpstreamEvents:
        if plan.chat is not None:
            context = plan.events_context(message_id=plan.reply_id)
        else:
            context = plan.events_context(generation_id=plan.reply_id)
        guard = self.guardrails.output_guard(
            mode=plan.mode, context=context, user_text=plan.content
        )
        return checked(events, guard) if guard is not None else events
