"""What the user controls in a prompt, gathered for the guardrails' input checks.

Besides the message, the user writes the chat's system prompt, their preferred system prompt
(plain chats) and a mode's parameters (the email writer's purpose, key points, ...), and attaches
documents. Every one of them reaches the model, so every one passes the input checks
(GuardrailPipeline.check_prompt_input): `prompt_texts()` lists them, in the order the prompt
sends them, and `system_prompt_of()` picks the system prompt the way the prompt does, so that
what is checked is exactly what is sent.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.chats.modes import ModeParams, get_mode
from app.files.attachments import PreparedFiles
from app.guardrails.pipeline import PromptText


def system_prompt_of(
    *,
    mode: str,
    chat_prompt: str | None,
    preferred_prompt: str | None,
    mode_params: ModeParams | Mapping[str, Any] | None,
) -> tuple[str, list[PromptText]]:
    """The system prompt a reply sends, and the parts of it the user wrote. The chat's own prompt
    wins; in plain chats the user's preferred prompt replaces the generic assistant one; other
    modes render their template from the parameters."""
    if chat_prompt:
        return chat_prompt, [PromptText(chat_prompt, "system_prompt")]
    if mode == "chat" and preferred_prompt:
        return preferred_prompt, [PromptText(preferred_prompt, "preferences")]
    declared = get_mode(mode)
    params = (
        mode_params
        if isinstance(mode_params, ModeParams)
        else declared.validate_params(dict(mode_params or {}))
    )
    return declared.render(params), list(_parameter_texts(params.model_dump()))


def _parameter_texts(values: Mapping[str, Any], prefix: str = "") -> Iterable[PromptText]:
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, str):
            yield PromptText(value, "mode_params", name)
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, str):
                    yield PromptText(item, "mode_params", name)
        elif isinstance(value, dict):
            yield from _parameter_texts(value, f"{name}.")


def prompt_texts(
    *,
    system: Sequence[PromptText] = (),
    content: str | None = None,
    documents: PreparedFiles | None = None,
) -> list[PromptText]:
    """Everything the user controls in one prompt: the system prompt's parts, the new
    documents' text (earlier ones were checked when they were attached) and the message."""
    texts = list(system)
    if documents is not None:
        names = {file.id: file.name for file in documents.files}
        texts.extend(
            PromptText(text.text, "attachment", names.get(file_id))
            for file_id, text in documents.texts.items()
        )
    if content is not None:
        texts.append(PromptText(content))
    return texts
