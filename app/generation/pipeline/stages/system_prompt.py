"""The system prompt: the chat's own, else (plain chats) the user's preferred one, else the
mode's; a stateless generation gets its mode's, rendered with the request's parameters."""

from app.chats.modes import get_mode
from app.generation.pipeline.stage import ReplyPlan, Stage


class SystemPrompt(Stage):
    name = "system_prompt"

    async def compose(self, plan: ReplyPlan) -> None:
        chat = plan.chat
        if chat is None:
            plan.system_parts.append(get_mode(plan.mode).render(plan.mode_params))
            return
        plan.system_parts.append(
            chat.system_prompt
            or (plan.user.system_prompt if chat.mode == "chat" else None)
            or get_mode(chat.mode).render(chat.mode_params)
        )
