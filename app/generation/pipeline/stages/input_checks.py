"""The guardrails' input checks on everything the user controls in the prompt (prompt_input.py):
the new message, the new documents, the system prompt's parts the user wrote, before anything is
stored or sent. A regenerated message was checked when it was sent; its system prompt is checked
again (it may have changed since)."""

from app.generation.pipeline.stage import ReplyPlan, Stage
from app.generation.prompt_input import prompt_texts
from app.guardrails.pipeline import GuardrailPipeline, PromptText


class InputChecks(Stage):
    name = "input_checks"

    def __init__(self, guardrails: GuardrailPipeline) -> None:
        self.guardrails = guardrails

    async def check(self, plan: ReplyPlan) -> None:
        _system, written = plan.system_prompt()
        if plan.project_instructions:
            written = [PromptText(plan.project_instructions, "system_prompt", "project"), *written]
        texts = (
            prompt_texts(system=written, content=plan.content, documents=plan.new_files)
            if plan.new_content
            else written
        )
        # A guard model call is a network call: the request's transaction (nothing written yet)
        # ends first, so that no database connection is held while it runs.
        guarded = self.guardrails.input_guarded(plan.mode)
        await self.guardrails.check_prompt_input(
            texts,
            mode=plan.mode,
            context=plan.events_context(),
            before_network=plan.scope.commit if guarded else None,
        )
