"""The conversation a client sends whole (the OpenAI-compatible /v1 surface): its messages go
upstream as they are (roles `system`, `developer`, `user`, `assistant` with `tool_calls`, and
`tool`; text and `image_url` content parts), instead of a chat's history.

A request without them (every chat reply) skips this stage. Images reach vision models only, as
in chats: a text-only model refuses them before anything is stored. The user's words go
upstream with personal data redacted (PII_*), as a chat's do; the prompt Parley builds from the
other stages only prices the request (quota, context), it is not what is sent.
"""

from collections.abc import Callable

from app.generation.errors import ModelNotVisionCapable
from app.generation.pipeline.stage import EmitEvent, ReplyPlan, Stage
from app.generation.prompt import Turn
from app.generation.upstream.types import ChatMessage, UpstreamCall
from app.guardrails.pipeline import GuardrailPipeline

NOTE = "client_messages"


def text_of(message: ChatMessage) -> str:
    """A message's text: its string content, or its text parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(text for text in texts if isinstance(text, str))
    return ""


def _has_image(message: ChatMessage) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "image_url" for part in content
    )


class ClientMessages(Stage):
    name = NOTE

    def __init__(self, guardrails: GuardrailPipeline) -> None:
        self.guardrails = guardrails

    async def check(self, plan: ReplyPlan) -> None:
        messages: list[ChatMessage] | None = plan.notes.get(NOTE)
        if messages is None or plan.model.vision:
            return
        for number, message in enumerate(messages):
            if _has_image(message):
                raise ModelNotVisionCapable(plan.model.name, f"messages[{number}]'s image_url")

    async def compose(self, plan: ReplyPlan) -> None:
        messages: list[ChatMessage] | None = plan.notes.get(NOTE)
        if messages is None:
            return
        # What the request costs: the client's system messages are the system prompt (as the
        # input checks saw it), then every other message's text.
        plan.system_parts = [plan.chat_prompt or ""]
        plan.turns = [
            Turn(str(m.get("role")), text_of(m) + _tool_calls_text(m))
            for m in messages
            if m.get("role") not in ("system", "developer")
        ]

    def wants_upstream_hook(self, plan: ReplyPlan) -> bool:
        return NOTE in plan.notes

    async def before_upstream(self, plan: ReplyPlan, call: UpstreamCall, emit: EmitEvent) -> None:
        def redact(text: str) -> str:
            return self.guardrails.redact_for_upstream(text, mode=plan.mode)

        call.messages = [_redacted(m, redact) for m in plan.notes[NOTE]]


def _tool_calls_text(message: ChatMessage) -> str:
    calls = message.get("tool_calls") or []
    return "".join(str(call.get("function", {})) for call in calls if isinstance(call, dict))


def _redacted(message: ChatMessage, redact: Callable[[str], str]) -> ChatMessage:
    if message.get("role") != "user":
        return message
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": redact(content)}
    if isinstance(content, list):
        parts = [
            {**part, "text": redact(part["text"])}
            if isinstance(part, dict) and part.get("type") == "text" and "text" in part
            else part
            for part in content
        ]
        return {**message, "content": parts}
    return message
