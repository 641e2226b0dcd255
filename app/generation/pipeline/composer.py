"""The reply composer: the ordered list of stages every reply goes through.

Adding a stage means writing one class (stage.py says what its hooks may do) and adding it to
`default_stages` below, in the place its work belongs; the service does not change."""

from collections.abc import Callable, Sequence

from app.core.config import Settings
from app.core.db import Database
from app.generation.pipeline.stage import (
    EmitEvent,
    ReplyPlan,
    Stage,
    UpstreamCall,
    UpstreamEvents,
)
from app.generation.pipeline.stages.attachments import Attachments
from app.generation.pipeline.stages.client_messages import ClientMessages
from app.generation.pipeline.stages.documents import Documents
from app.generation.pipeline.stages.history import History
from app.generation.pipeline.stages.input_checks import InputChecks
from app.generation.pipeline.stages.output_guard import OutputGuard
from app.generation.pipeline.stages.project import ProjectInstructions
from app.generation.pipeline.stages.retrieval import Retrieval
from app.generation.pipeline.stages.system_prompt import SystemPrompt
from app.generation.pipeline.stages.title import Title
from app.generation.prompt import Prompt, build_prompt
from app.generation.reply_stream import ReplyResult
from app.guardrails.pipeline import GuardrailPipeline
from app.knowledge.parts import KnowledgeParts


def default_stages(
    *,
    settings: Settings,
    db: Database,
    guardrails: GuardrailPipeline,
    knowledge: Callable[[], KnowledgeParts | None],
    tools: Stage | None = None,
) -> list[Stage]:
    """Every stage, in order. Each hook runs in this order within its phase. `tools`: the
    tool-call loop (stages/tools.py), left out where no tools are run (tests of the others)."""
    return [
        Attachments(),
        InputChecks(guardrails),
        Documents(guardrails),
        # Before the system prompt: a project's instructions come first.
        ProjectInstructions(guardrails),
        SystemPrompt(guardrails),
        History(guardrails),
        # After the history (whose place it takes for /v1 requests), before retrieval (which
        # adds to the messages it sends).
        ClientMessages(guardrails),
        Retrieval(knowledge=knowledge, db=db, settings=settings, guardrails=guardrails),
        # After retrieval (whose messages it sends on each step), inside the output guard (which
        # checks the text of every step).
        *([tools] if tools is not None else []),
        OutputGuard(guardrails),
        Title(settings),
    ]


class ReplyComposer:
    """Runs a plan through the stages: checks, then composition into a prompt; and gives the
    reply its hooks for the upstream call, its stream filters and its follow-ups."""

    def __init__(self, stages: Sequence[Stage], *, max_image_side: int) -> None:
        self.stages = list(stages)
        self.max_image_side = max_image_side

    async def check(self, plan: ReplyPlan) -> None:
        for stage in self.stages:
            await stage.check(plan)

    async def compose(self, plan: ReplyPlan) -> Prompt:
        """The prompt of a plan whose user message is stored: the stages add to it, then what
        fits the model's context is kept (prompt.py)."""
        for stage in self.stages:
            await stage.compose(plan)
        plan.prompt = build_prompt(
            system_prompt="\n\n".join(part for part in plan.system_parts if part) or None,
            history=plan.turns,
            context_length=plan.model.context_length,
            max_tokens=plan.max_tokens,
            vision=plan.model.vision,
            max_image_side=self.max_image_side,
        )
        return plan.prompt

    def reply_hooks(self, plan: ReplyPlan) -> "ReplyHooks":
        """What the reply's task runs of the stages for this plan (only those with work)."""
        return ReplyHooks(
            plan, [stage for stage in self.stages if stage.wants_upstream_hook(plan)], self.stages
        )


class ReplyHooks:
    """The stages' reply-time hooks for one plan, as the ReplyStream calls them."""

    def __init__(self, plan: ReplyPlan, upstream: list[Stage], stages: list[Stage]) -> None:
        self.plan = plan
        self.upstream = upstream
        self.stages = stages

    async def before_upstream(self, call: UpstreamCall, emit: EmitEvent) -> None:
        for stage in self.upstream:
            await stage.before_upstream(self.plan, call, emit)

    def filter(self, events: UpstreamEvents) -> UpstreamEvents:
        for stage in self.stages:
            events = stage.filter(self.plan, events)
        return events

    def saved(self, result: ReplyResult) -> None:
        for stage in self.stages:
            stage.saved(self.plan, result)
