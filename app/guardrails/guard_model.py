"""The guard model: a safety classifier reached through the upstream, judging a user's input or a
reply in its conversation.

Formats (GUARD_FORMAT):
- `llama_guard`: Llama Guard 3 served by an OpenAI-compatible server (vLLM, llama.cpp). The
  conversation goes as chat messages; the model's chat template frames the classification and
  it answers `safe`, or `unsafe` and a line of category codes (`S1,S10`).
- `shieldgemma`: ShieldGemma. Parley writes its prompt (the conversation and one policy per
  request, as its model card does) and reads `Yes` (violates) or `No`; the category is the
  policy's name. The policies are asked in parallel.
- `granite_guardian`: Granite Guardian 3. The risk to judge goes in
  `chat_template_kwargs.guardian_config` (vLLM passes it to the chat template); it answers `Yes`
  (risky) or `No`; the category is the risk's name.
- `openai_moderation`: `POST /v1/moderations`; `flagged` and the categories that are true.

The guard is reached through Parley's upstream client (the generation package hands it a
`GuardUpstream`), so it shares the one HTTP client, its pool and its proxies.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

logger = logging.getLogger("parley.guardrails")

GuardFormat = Literal["llama_guard", "shieldgemma", "granite_guardian", "openai_moderation"]

# ShieldGemma's published policies (its model card), by the category name Parley reports.
SHIELDGEMMA_POLICIES: dict[str, str] = {
    "dangerous_content": (
        '"No Dangerous Content": The prompt shall not contain or seek generation of content '
        "that harming oneself and/or others (e.g., accessing or building firearms and "
        "explosive devices, promotion of terrorism, instructions for suicide)."
    ),
    "harassment": (
        '"No Harassment": The prompt shall not contain or seek generation of content that is '
        "malicious, intimidating, bullying, or abusive content targeting another individual "
        "(e.g., physical threats, denial of tragic events, disparaging victims of violence)."
    ),
    "hate_speech": (
        '"No Hate Speech": The prompt shall not contain or seek generation of content that '
        "targeting identity and/or protected attributes (e.g., racial slurs, promotion of "
        "discrimination, calls to violence against protected groups) or dehumanizing/belittling/"
        "vilifying on the bases of race, ethnicity, religion, disability, age, nationality, "
        "veteran status, sexual orientation, gender, gender identity, caste, or any other "
        "protected status."
    ),
    "sexually_explicit": (
        '"No Sexually Explicit Information": The prompt shall not contain or seek generation of '
        "content that contains references to sexual acts or other lewd content (e.g., sexually "
        "graphic descriptions, content aimed at causing arousal). Medical or scientific terms "
        "related to human anatomy or sex education are permitted."
    ),
}
GRANITE_RISKS: tuple[str, ...] = ("harm",)


class GuardUpstream(Protocol):
    """How the guard reaches its model: a chat completion (not streamed) and /moderations."""

    async def complete(
        self, messages: list[dict[str, Any]], *, max_tokens: int, extra: dict[str, Any]
    ) -> str:
        """The text of the model's answer."""
        ...

    async def moderate(self, text: str) -> dict[str, Any]:
        """The JSON answer of POST /moderations for `text`."""
        ...


class GuardUnreachable(Exception):
    """The guard model did not answer in time, could not be reached, or answered nonsense."""


@dataclass(frozen=True)
class Verdict:
    safe: bool
    categories: tuple[str, ...] = ()

    @property
    def category(self) -> str:
        return ",".join(self.categories) or "unsafe"


SAFE = Verdict(True)


def parse_llama_guard(text: str) -> Verdict:
    """`safe`, or `unsafe` followed by a line of comma-separated category codes."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise GuardUnreachable("the guard model gave an empty answer")
    head = lines[0].lower()
    if head == "safe":
        return SAFE
    if head == "unsafe":
        codes = tuple(c.strip() for c in lines[1].split(",") if c.strip()) if len(lines) > 1 else ()
        return Verdict(False, codes)
    raise GuardUnreachable(f"the guard model's answer is not a verdict: {lines[0][:40]!r}")


def parse_yes_no(text: str) -> bool:
    """ShieldGemma and Granite Guardian: True when the answer starts with Yes (a violation)."""
    word = text.strip().split(maxsplit=1)[0].strip(".,:").lower() if text.strip() else ""
    if word == "yes":
        return True
    if word == "no":
        return False
    raise GuardUnreachable(f"the guard model's answer is not Yes or No: {text[:40]!r}")


def shieldgemma_prompt(user_text: str, reply: str | None, policy: str) -> str:
    if reply is None:
        return (
            "You are a policy expert trying to help determine whether a user prompt is in "
            "violation of the defined safety policies.\n\n<start_of_turn>\nHuman Question: "
            f"{user_text.strip()}\n<end_of_turn>\n\nOur safety principle is defined in the "
            f"below:\n\n* {policy}\n\n===\n\nDoes the human question violate the above "
            "principle? Your answer must start with 'Yes' or 'No'. And then walk through step "
            "by step to be sure we answer correctly.\n"
        )
    return (
        "You are a policy expert trying to help determine whether an AI response to a prompt is "
        "in violation of the defined safety policies.\n\n<start_of_turn>\nHuman Question: "
        f"{user_text.strip()}\n<end_of_turn>\n\n<start_of_turn>\nChatbot Response: "
        f"{reply.strip()}\n<end_of_turn>\n\nOur safety principle is defined in the below:\n\n"
        f"* {policy.replace('The prompt shall', 'The chatbot shall')}\n\n===\n\nDoes the "
        "Chatbot Response violate the above principle? Your answer must start with 'Yes' or "
        "'No'. And then walk through step by step to be sure we answer correctly.\n"
    )


class GuardModel:
    """Asks the guard model for a verdict on a user's text, or on a reply to it."""

    def __init__(self, upstream: GuardUpstream, *, format: GuardFormat, timeout: float) -> None:
        self.upstream = upstream
        self.format = format
        self.timeout = timeout

    async def judge(self, user_text: str, reply: str | None = None) -> Verdict:
        """The verdict on `user_text` (input), or on `reply` as an answer to it (output).
        GuardUnreachable when the guard fails to answer within GUARD_TIMEOUT."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._judge(user_text, reply)
        except GuardUnreachable:
            raise
        except TimeoutError as exc:
            raise GuardUnreachable(f"no verdict within {self.timeout:g} s") from exc
        except Exception as exc:  # the upstream's errors, whatever their kind
            raise GuardUnreachable(str(exc) or type(exc).__name__) from exc

    async def _judge(self, user_text: str, reply: str | None) -> Verdict:
        conversation = [{"role": "user", "content": user_text}]
        if reply is not None:
            conversation.append({"role": "assistant", "content": reply})
        if self.format == "llama_guard":
            answer = await self.upstream.complete(conversation, max_tokens=20, extra={})
            return parse_llama_guard(answer)
        if self.format == "openai_moderation":
            return _moderation_verdict(
                await self.upstream.moderate(reply if reply is not None else user_text)
            )
        if self.format == "shieldgemma":
            names = list(SHIELDGEMMA_POLICIES)
            answers = await asyncio.gather(
                *(
                    self.upstream.complete(
                        [
                            {
                                "role": "user",
                                "content": shieldgemma_prompt(
                                    user_text, reply, SHIELDGEMMA_POLICIES[name]
                                ),
                            }
                        ],
                        max_tokens=3,
                        extra={},
                    )
                    for name in names
                )
            )
            return _yes_no_verdict(names, answers)
        answers = await asyncio.gather(
            *(
                self.upstream.complete(
                    conversation,
                    max_tokens=3,
                    extra={"chat_template_kwargs": {"guardian_config": {"risk_name": risk}}},
                )
                for risk in GRANITE_RISKS
            )
        )
        return _yes_no_verdict(list(GRANITE_RISKS), answers)


def _yes_no_verdict(names: Sequence[str], answers: Sequence[str]) -> Verdict:
    pairs = zip(names, answers, strict=True)
    flagged = tuple(name for name, answer in pairs if parse_yes_no(answer))
    return Verdict(not flagged, flagged)


def _moderation_verdict(body: dict[str, Any]) -> Verdict:
    try:
        result = body["results"][0]
        flagged = bool(result["flagged"])
        categories = tuple(
            sorted(name for name, on in (result.get("categories") or {}).items() if on)
        )
    except (KeyError, IndexError, TypeError) as exc:
        raise GuardUnreachable("the moderation answer has an odd shape") from exc
    return Verdict(not flagged, categories if flagged else ())
