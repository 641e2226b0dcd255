"""The guardrails' input checks on the user's new words, before anything is stored or sent."""

from app.generation.pipeline.stage import ReplyPlan, Stage
from app.guardrails.pipeline import GuardrailPipeline


class InputChecks(Stage):
    name = "input_checks"

    def __init__(self, guardrails: GuardrailPipeline) -> None:
        self.guardrails = guardrails

    async def check(self, plan: ReplyPlan) -> None:
        if not plan.new_content:
            return
        # A guard model call is a network call: the request's transaction (nothing written yet)
        # ends first, so that no database connection is held while it runs.
        guarded = self.guardrails.input_guarded(plan.mode)
        await self.guardrails.check_input(
            plan.content,
            mode=plan.mode,
            context=plan.events_context(),
            before_network=plan.scope.commit if guarded else None,
        )
