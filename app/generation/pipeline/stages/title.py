"""A new chat's title once its first reply is saved: asked of the model after a complete reply,
the message's first words after a stopped or failed one (summaries.py)."""

from app.core.config import Settings
from app.generation.pipeline.stage import ReplyPlan, Stage
from app.generation.reply_stream import ReplyResult


class Title(Stage):
    name = "title"

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auto_title

    async def compose(self, plan: ReplyPlan) -> None:
        chat = plan.chat
        if self.enabled and chat is not None and chat.title is None:
            first_exchange = sum(entry.role == "user" for entry in plan.history) == 1
            plan.notes[self.name] = first_exchange

    def saved(self, plan: ReplyPlan, result: ReplyResult) -> None:
        if plan.notes.get(self.name) and plan.chat is not None:
            plan.scope.titles.title_later(
                plan.user.id,
                plan.chat.id,
                plan.content,
                plan.model,
                generate=result.status == "complete",
            )
