"""The guardrail pipeline: which checks run where, and what happens when one fires.

Three points:
- `input`: everything the user wrote that reaches the model, before the upstream is called
  (max_input_chars, blocked_patterns, pii, guard_model): the message or prompt, the chat's
  system prompt, the user's preferred system prompt, a mode's parameters; blocked patterns and
  the guard model also read attached documents and retrieved chunks (check_prompt_input);
- `untrusted`: text entering the prompt from elsewhere, documents and retrieved chunks (pii,
  injection);
- `output`: the reply while it streams (blocked_patterns, pii, guard_model), see output.py.

The deployment chooses the checks of each point (GUARDRAILS_INPUT, GUARDRAILS_UNTRUSTED,
GUARDRAILS_OUTPUT; the guard model by GUARD_MODEL and GUARD_ON); GUARDRAILS_MODES narrows them
per mode. Every refusal, redaction and flag is recorded (recorder.py) without the text it found.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from app.core.config import Settings
from app.guardrails.checks import (
    PII_KINDS,
    BlockedPatterns,
    Finding,
    PatternSet,
    find_injection,
    pii_patterns,
    redact,
)
from app.guardrails.errors import GuardUnavailable, InputBlocked, InputTooLarge
from app.guardrails.guard_model import SAFE, GuardModel, GuardUnreachable, Verdict
from app.guardrails.output import OutputGuard
from app.guardrails.recorder import Event, EventContext, ModerationRecorder

logger = logging.getLogger("parley.guardrails")

Point = Literal["input", "untrusted", "output"]
POINTS: tuple[Point, ...] = ("input", "untrusted", "output")
# Untrusted text larger than this is checked in a worker thread, off the event loop.
_THREAD_CHARS = 20_000

PII_LABELS = {
    "email": "an email address",
    "phone": "a phone number",
    "payment_card": "a payment card number",
    "iban": "a bank account number (IBAN)",
    "secret": "a secret (an API key, private key or token)",
}


def checks_by_point(settings: Settings, mode: str) -> dict[Point, list[str]]:
    """The checks that run at each point for chats and requests in `mode`."""
    checks: dict[Point, list[str]] = {
        "input": list(settings.guardrails_input),
        "untrusted": list(settings.guardrails_untrusted),
        "output": list(settings.guardrails_output),
    }
    if settings.guard_model:
        if settings.guard_on in ("input", "both"):
            checks["input"].append("guard_model")
        if settings.guard_on in ("output", "both"):
            checks["output"].append("guard_model")
    for point, allowed in settings.guardrails_modes.get(mode, {}).items():
        if point in checks:
            checks[point] = [c for c in checks[point] if c in allowed]
    return checks


PromptSource = Literal["message", "system_prompt", "preferences", "mode_params", "attachment"]

# What each kind of prompt text is called in a refusal ("The chat's system prompt contains ...").
_SOURCE_LABELS: dict[str, str] = {
    "message": "The input",
    "system_prompt": "The chat's system prompt",
    "preferences": "Your preferred system prompt",
    "mode_params": "The mode's parameters",
    "attachment": "An attached file",
}
# The guard model judges long text in pieces of at most this many characters, in parallel, so
# that an attached document does not overflow a guard's context window.
GUARD_PIECE_CHARS = 8000


@dataclass(frozen=True)
class PromptText:
    """A piece of text the user controls that the prompt sends to the model."""

    text: str
    source: PromptSource = "message"
    # What it is, for refusals and the moderation log: a file's name, a parameter's name.
    name: str | None = None


@dataclass(frozen=True)
class UntrustedText:
    """Text that enters the prompt from elsewhere than the user's own message."""

    text: str
    source: Literal["attachment", "retrieval", "tool"] = "attachment"
    # What it is, for the moderation log: a file's name, a collection and chunk, ...
    name: str | None = None


@dataclass(frozen=True)
class UntrustedResult:
    """What may enter the prompt: the text (redacted as PII_* says), whether it holds
    instructions aimed at the model (to quote it with a warning), and whether it was dropped
    (on_block="drop", for text with personal data that must not be sent)."""

    text: str
    flagged: bool = False
    dropped: bool = False


class GuardrailPipeline:
    def __init__(
        self,
        settings: Settings,
        recorder: ModerationRecorder,
        guard: GuardModel | None = None,
    ) -> None:
        self.settings = settings
        self.recorder = recorder
        self.guard = guard
        self.policies: dict[str, str] = {k: getattr(settings, f"pii_{k}") for k in PII_KINDS}
        self._blocked = BlockedPatterns(settings.blocked_patterns)
        self._pii_active = PatternSet(
            pii_patterns(k for k, policy in self.policies.items() if policy != "allow")
        )
        self._pii_redact = PatternSet(
            pii_patterns(k for k, policy in self.policies.items() if policy == "redact")
        )
        self._pii_all = PatternSet(pii_patterns(PII_KINDS))
        self._block_kinds = frozenset(k for k, p in self.policies.items() if p == "block")
        self.checks = lru_cache(maxsize=64)(self._checks)

    def _checks(self, mode: str) -> dict[Point, list[str]]:
        checks = checks_by_point(self.settings, mode)
        if self.guard is None:
            for point in POINTS:
                checks[point] = [c for c in checks[point] if c != "guard_model"]
        return checks

    def _record(
        self,
        point: Point,
        check: str,
        category: str,
        action: str,
        context: EventContext,
        *,
        detail: dict[str, object] | None = None,
        blocked_text: str | None = None,
    ) -> None:
        self.recorder.record(
            Event(point, check, category, action, context, detail, blocked_text=blocked_text)
        )

    # --- input ---------------------------------------------------------------------------------

    async def check_input(
        self,
        text: str,
        *,
        mode: str,
        context: EventContext,
        before_network: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """The input checks on the user's message alone (check_prompt_input with one part)."""
        await self.check_prompt_input(
            [PromptText(text)], mode=mode, context=context, before_network=before_network
        )

    async def check_prompt_input(
        self,
        parts: Sequence[PromptText],
        *,
        mode: str,
        context: EventContext,
        before_network: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Refuses what the user controls in a prompt (413 input_too_large, 422 input_blocked
        with the category, 503 guard_unavailable) before anything is sent upstream: the message
        is held to MAX_INPUT_CHARS; the message, system prompts and mode parameters to the
        blocked patterns and the PII block policies; all of them and the attached documents'
        text (whose patterns and personal data check_untrusted reads) are judged by the guard
        model in one verdict. Redaction happens later, on the text sent (redact_for_upstream),
        so what is stored keeps the original. `before_network` runs before the guard model is
        called (to release a database connection)."""
        checks = self.checks(mode)["input"]
        own = [part for part in parts if part.source != "attachment"]
        if "max_input_chars" in checks:
            for part in own:
                if part.source == "message" and len(part.text) > self.settings.max_input_chars:
                    self._record("input", "max_input_chars", "too_large", "block", context)
                    raise InputTooLarge(
                        f"The input is longer than {self.settings.max_input_chars} characters."
                    )
        if "blocked_patterns" in checks and self._blocked:
            for part in own:
                if self._blocked.find(part.text):
                    self._record(
                        "input",
                        "blocked_patterns",
                        "blocked_pattern",
                        "block",
                        context,
                        detail=_part_detail(part),
                    )
                    raise InputBlocked(
                        "blocked_pattern",
                        f"{_SOURCE_LABELS[part.source]} contains text this server does not accept.",
                    )
        if "pii" in checks and self._pii_active:
            counts: dict[str, int] = {}
            for part in own:
                findings = self._pii_active.find(part.text)
                for kind in _kinds(findings):
                    if self.policies[kind] == "block":
                        count = sum(f.kind == kind for f in findings)
                        self._record(
                            "input",
                            "pii",
                            kind,
                            "block",
                            context,
                            detail={**_part_detail(part), "count": count},
                        )
                        raise InputBlocked(
                            kind,
                            f"{_SOURCE_LABELS[part.source]} contains {PII_LABELS[kind]}, which "
                            "this server does not accept. Remove it and send again.",
                        )
                for finding in findings:
                    counts[finding.kind] = counts.get(finding.kind, 0) + 1
            for kind, count in sorted(counts.items()):
                self._record("input", "pii", kind, "redact", context, detail={"count": count})
        if "guard_model" in checks and any(part.text.strip() for part in parts):
            if before_network is not None:
                await before_network()
            judged = "\n\n".join(
                self.redact_for_upstream(part.text, mode=mode)
                if part.source != "attachment"
                else self._redact_untrusted(part.text, mode)
                for part in parts
                if part.text
            )
            pieces = [
                judged[i : i + GUARD_PIECE_CHARS] for i in range(0, len(judged), GUARD_PIECE_CHARS)
            ]
            verdicts = await asyncio.gather(
                *(self._verdict(piece, None, context) for piece in pieces)
            )
            for verdict in verdicts:
                if not verdict.safe:
                    self._record("input", "guard_model", verdict.category, "block", context)
                    raise InputBlocked(verdict.category)

    def _redact_untrusted(self, text: str, mode: str) -> str:
        if "pii" not in self.checks(mode)["untrusted"] or not self._pii_active:
            return text
        return redact(text, self._pii_active.find(text))

    def redact_for_upstream(self, text: str, *, mode: str) -> str:
        """The user's text as it may leave Parley: PII of kinds set to `redact` replaced by typed
        placeholders (`[EMAIL]`), when the pii check is on for the input of `mode`."""
        if "pii" not in self.checks(mode)["input"] or not self._pii_redact:
            return text
        return redact(text, self._pii_redact.find(text))

    def for_embedding(
        self, text: str, *, point: Literal["input", "untrusted"]
    ) -> tuple[str, dict[str, int]]:
        """Text as it may go to the embedding endpoint (an upstream too): every kind of personal
        data whose policy is not `allow` replaced by its placeholder, `block` kinds included
        (for embeddings "block" means the item never leaves Parley), when the pii check is on
        at `point` (queries are input, documents untrusted). Returns the text and how many items
        of each kind it held. Pure: safe to call in a worker thread."""
        if "pii" not in self.checks("chat")[point] or not self._pii_active:
            return text, {}
        findings = self._pii_active.find(text)
        counts: dict[str, int] = {}
        for finding in findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return redact(text, findings), counts

    def record_embedding_redactions(
        self, counts: dict[str, int], *, context: EventContext, name: str | None = None
    ) -> None:
        """Records what for_embedding() replaced in a document (point `untrusted`, detail
        source `ingestion`)."""
        for kind, count in sorted(counts.items()):
            detail: dict[str, object] = {"source": "ingestion", "count": count}
            if name:
                detail["name"] = name[:200]
            self._record("untrusted", "pii", kind, "redact", context, detail=detail)

    def blocked_kinds(self, kinds: Iterable[str]) -> list[str]:
        """Those of `kinds` whose policy is `block`."""
        return sorted(kind for kind in kinds if kind in self._block_kinds)

    def input_guarded(self, mode: str) -> bool:
        """Whether the input check of `mode` calls the guard model (a network call)."""
        return "guard_model" in self.checks(mode)["input"]

    async def _verdict(
        self, user_text: str, reply: str | None, context: EventContext, point: Point = "input"
    ) -> Verdict:
        assert self.guard is not None
        try:
            return await self.guard.judge(user_text, reply)
        except GuardUnreachable as exc:
            reason = str(exc)[:200]
            if self.settings.guard_fail_mode == "open":
                logger.warning(
                    "guard model unreachable: allowed (GUARD_FAIL_MODE=open)",
                    extra={"reason": reason, "point": point},
                )
                self._record(
                    point,
                    "guard_model",
                    "unreachable",
                    "fail_open",
                    context,
                    detail={"reason": reason},
                )
                return SAFE
            logger.warning(
                "guard model unreachable: refused (GUARD_FAIL_MODE=closed)",
                extra={"reason": reason, "point": point},
            )
            self._record(
                point,
                "guard_model",
                "unreachable",
                "fail_closed",
                context,
                detail={"reason": reason},
            )
            raise GuardUnavailable() from exc

    # --- untrusted text ------------------------------------------------------------------------

    async def check_untrusted(
        self,
        texts: Sequence[UntrustedText],
        *,
        mode: str,
        context: EventContext,
        record: bool = True,
        on_block: Literal["raise", "drop"] = "raise",
    ) -> list[UntrustedResult]:
        """Checks text about to enter the prompt from documents or retrieval: personal data per
        PII_* (redacted; `block` refuses the request with 422 input_blocked, or with
        on_block="drop" leaves that text out) and instructions aimed at the model (flagged: the
        caller quotes the text as data with a warning). One result per text, in order.
        `record=False` checks without logging events (text already checked on an earlier turn)."""
        checks = list(self.checks(mode)["untrusted"])
        # Blocked patterns hold for everything the user brings into a prompt: their own files
        # and their collections' chunks too.
        if "blocked_patterns" in self.checks(mode)["input"] and self._blocked:
            checks.append("blocked_patterns")
        if not texts or not ({"pii", "injection", "blocked_patterns"} & set(checks)):
            return [UntrustedResult(t.text) for t in texts]
        if sum(len(t.text) for t in texts) > _THREAD_CHARS:
            outcomes = await asyncio.to_thread(self._untrusted, texts, checks)
        else:
            outcomes = self._untrusted(texts, checks)
        results: list[UntrustedResult] = []
        for item, (result, kinds, injections) in zip(texts, outcomes, strict=True):
            detail: dict[str, object] = {"source": item.source}
            if item.name:
                detail["name"] = item.name[:200]
            if "blocked_pattern" in kinds:
                if record:
                    self._record(
                        "untrusted",
                        "blocked_patterns",
                        "blocked_pattern",
                        "block",
                        context,
                        detail=detail,
                    )
                if on_block == "raise":
                    what = f"“{item.name}”" if item.name else "Text added to the prompt"
                    raise InputBlocked(
                        "blocked_pattern", f"{what} contains text this server does not accept."
                    )
                results.append(UntrustedResult("", dropped=True))
                continue
            blocked = [k for k in kinds if self.policies[k] == "block"]
            if blocked:
                if record:
                    self._record("untrusted", "pii", blocked[0], "block", context, detail=detail)
                if on_block == "raise":
                    what = f"“{item.name}”" if item.name else "Text added to the prompt"
                    raise InputBlocked(
                        blocked[0],
                        f"{what} contains {PII_LABELS[blocked[0]]}, which this server does not "
                        "send to the model.",
                    )
                results.append(UntrustedResult("", dropped=True))
                continue
            if record:
                for kind in kinds:
                    if self.policies[kind] == "redact":
                        count = kinds[kind]
                        self._record(
                            "untrusted",
                            "pii",
                            kind,
                            "redact",
                            context,
                            detail={**detail, "count": count},
                        )
                if injections:
                    self._record(
                        "untrusted",
                        "injection",
                        "prompt_injection",
                        "flag",
                        context,
                        detail={**detail, "count": injections},
                    )
            results.append(result)
        return results

    def _untrusted(
        self, texts: Sequence[UntrustedText], checks: Sequence[str]
    ) -> list[tuple[UntrustedResult, dict[str, int], int]]:
        out: list[tuple[UntrustedResult, dict[str, int], int]] = []
        for item in texts:
            text = item.text
            kinds: dict[str, int] = {}
            if "blocked_patterns" in checks and self._blocked.find(text):
                kinds["blocked_pattern"] = 1
                out.append((UntrustedResult(""), kinds, 0))
                continue
            if "pii" in checks and self._pii_active:
                findings = self._pii_active.find(text)
                for finding in findings:
                    kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
                text = redact(text, [f for f in findings if self.policies[f.kind] == "redact"])
            injections = len(find_injection(text)) if "injection" in checks else 0
            out.append((UntrustedResult(text, flagged=injections > 0), kinds, injections))
        return out

    # --- output --------------------------------------------------------------------------------

    def output_guard(
        self, *, mode: str, context: EventContext, user_text: str
    ) -> OutputGuard | None:
        """The check for one reply, or None when no check runs on the output of `mode` (then
        nothing is held back)."""
        checks = self.checks(mode)["output"]
        patterns = self._blocked if "blocked_patterns" in checks and self._blocked else None
        pii = self._pii_active if "pii" in checks and self._pii_active else None
        judge: Callable[[str], Awaitable[Verdict]] | None = None
        if "guard_model" in checks:
            asked = self.redact_for_upstream(user_text, mode=mode)

            async def judge(reply: str) -> Verdict:
                return await self._verdict(asked, reply, context, "output")

        if patterns is None and pii is None and judge is None:
            return None

        def report(check: str, category: str, action: str, blocked: str | None, count: int) -> None:
            self._record(
                "output",
                check,
                category,
                action,
                context,
                detail={"count": count},
                blocked_text=blocked,
            )

        return OutputGuard(
            holdback_tokens=self.settings.guard_holdback_tokens,
            patterns=patterns,
            pii=pii,
            block_kinds=self._block_kinds,
            judge=judge,
            report=report,
            redact_all=lambda text: redact(text, self._pii_all.find(text)),
        )


def _part_detail(part: PromptText) -> dict[str, object]:
    detail: dict[str, object] = {"source": part.source}
    if part.name:
        detail["name"] = part.name[:200]
    return detail


def _kinds(findings: Sequence[Finding]) -> list[str]:
    return sorted({finding.kind for finding in findings})
