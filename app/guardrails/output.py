"""The check on a reply while it streams: text reaches the client only once it has passed.

The newest GUARD_HOLDBACK_TOKENS tokens are held back; older text is released once the checks have
seen it together with what follows, so a blocked word or a card number split across tokens is
seen whole before any of it leaves. A match that reaches the end of the text so far may still
grow (an email address, a phone number), so nothing from its start on is released until it ends.

With the guard model on output, text is released a sentence at a time, after the guard has judged
the reply so far (one guard call per released sentence, not per token).

On a violation `ContentBlocked` is raised: the caller's stream ends there, which closes the
upstream request, and what was held back never reaches the client.
"""

import logging
import string
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable

from app.guardrails.checks import MAX_MATCH_CHARS, BlockedPatterns, Finding, PatternSet, redact
from app.guardrails.errors import ContentBlocked
from app.guardrails.guard_model import Verdict

logger = logging.getLogger("parley.guardrails")

# Where a sentence ends: text up to one of these is released as a whole when the guard model
# judges replies.
_SENTENCE_ENDS = (". ", "! ", "? ", "\n", ".\n", "。")

# Characters that can belong to one item of personal data (an address, a key, a number), and
# the separators that may stand between its groups: spaces (NBSP too) and dashes.
_JOINED = frozenset(string.ascii_letters + string.digits + "@.%+-_")
_SEPARATORS = frozenset(" -\u00a0\u2007\u202f\u2009\u3000\u2010\u2011\u2012\u2013\u2014\u2212")

Judge = Callable[[str], Awaitable[Verdict]]
# Called for each thing the check did: (check, category, action, blocked_text or None, count).
Report = Callable[[str, str, str, str | None, int], None]


class OutputGuard:
    """Feed it the reply's text as it arrives; it returns what may be shown now."""

    def __init__(
        self,
        *,
        holdback_tokens: int,
        patterns: BlockedPatterns | None,
        pii: PatternSet | None,
        block_kinds: frozenset[str],
        judge: Judge | None,
        report: Report,
        redact_all: Callable[[str], str],
    ) -> None:
        self._patterns = patterns
        self._pii = pii
        self._block_kinds = block_kinds
        self._judge = judge
        self._report = report
        self._redact_all = redact_all
        self._holdback = holdback_tokens
        self._sizes: deque[int] = deque(maxlen=holdback_tokens)
        self._pending = ""
        self._tail = ""  # the last MAX_MATCH_CHARS released, for matches across the boundary
        self._released: list[str] = []

    @property
    def released_text(self) -> str:
        return "".join(self._released)

    async def feed(self, text: str) -> str:
        """Takes the next piece of the reply; returns the text now released (maybe "")."""
        self._pending += text
        self._sizes.append(len(text))
        hold_from = self._scan(len(text), final=False)
        held = min(len(self._pending), sum(self._sizes))
        cut = min(len(self._pending) - held, hold_from)
        return await self._release(cut, final=False)

    async def end(self) -> str:
        """The reply ended: checks what is still held back and returns it."""
        self._scan(len(self._pending), final=True)
        return await self._release(len(self._pending), final=True)

    def _scan(self, new: int, *, final: bool) -> int:
        """Checks the newest text (and enough before it for a match to be seen whole): blocks,
        or redacts in place. Returns where in the pending text a match still open begins (or
        its length): nothing from there on may be released yet."""
        window = self._tail + self._pending
        offset = len(self._tail)
        start = max(0, len(window) - new - MAX_MATCH_CHARS)
        hold_from = len(self._pending)
        findings: list[Finding] = []
        if self._patterns:
            findings += self._patterns.find(window, start)
        if self._pii:
            findings += self._pii.find(window, start)
        if not findings:
            return hold_from
        to_redact: list[Finding] = []
        for finding in findings:
            if not final and finding.open:
                hold_from = min(hold_from, max(0, finding.start - offset))
                continue
            if finding.kind == "blocked_pattern" or finding.kind in self._block_kinds:
                self._block(
                    "blocked_patterns" if finding.kind == "blocked_pattern" else "pii",
                    finding.kind,
                )
            if finding.start >= offset:
                start, end = finding.start - offset, finding.end - offset
                to_redact.append(Finding(finding.kind, start, end))
        if to_redact:
            self._pending = redact(self._pending, to_redact)
            for kind in sorted({f.kind for f in to_redact}):
                count = sum(f.kind == kind for f in to_redact)
                self._report("pii", kind, "redact", None, count)
        return min(hold_from, len(self._pending))

    def _block(self, check: str, category: str) -> None:
        blocked = self._redact_all(self.released_text + self._pending)
        self._report(check, category, "block", blocked, 1)
        raise ContentBlocked(category)

    async def _release(self, cut: int, *, final: bool) -> str:
        if not final and 0 < cut < len(self._pending):
            cut = _unsplit(self._pending, cut)
        if cut <= 0:
            return ""
        if self._judge is not None:
            if not final:
                cut = _sentence_cut(self._pending, cut, self._holdback)
                if cut <= 0:
                    return ""
            verdict = await self._judge(self.released_text + self._pending[:cut])
            if not verdict.safe:
                self._block("guard_model", verdict.category)
        released, self._pending = self._pending[:cut], self._pending[cut:]
        self._released.append(released)
        self._tail = (self._tail + released)[-MAX_MATCH_CHARS:]
        return released


def _joined(char: str) -> bool:
    return (
        char in _JOINED
        or char.isalnum()
        or (not char.isascii() and unicodedata.category(char) in ("Cf", "Mn", "Po"))
    )


def _separated(text: str, left: int, right: int) -> bool:
    """Whether the separators text[left + 1:right] (one or two) stand between two groups of one
    item: a letter or digit before, a digit or capital after."""
    return (
        0 < right - left - 1 <= 2
        and left >= 0
        and right < len(text)
        and text[left].isalnum()
        and (text[right].isdigit() or text[right].isupper())
    )


def _unsplit(text: str, cut: int) -> int:
    """Moves a release point that would split a run of characters that may be one item (an
    email address, a key, a card or phone number in groups: "4111 1111 ...") back to the run's
    start, so that an item is never half shown while its end is still unseen."""
    left = cut - 1
    while left >= 0 and cut - left <= 3 and text[left] in _SEPARATORS:
        left -= 1
    right = cut
    while right < len(text) and right - cut < 3 and text[right] in _SEPARATORS:
        right += 1
    if left == cut - 1 and right == cut:
        joined = _joined(text[cut - 1]) and _joined(text[cut])
    else:
        joined = _separated(text, left, right)
    if not joined:
        return cut
    low = max(0, cut - MAX_MATCH_CHARS)
    i = left + 1
    while i > low:
        if _joined(text[i - 1]):
            i -= 1
            continue
        j = i - 1
        while j >= low and i - j <= 3 and text[j] in _SEPARATORS:
            j -= 1
        if j >= low and _separated(text, j, i):
            i = j + 1
        else:
            break
    return cut if i <= low and low > 0 else i


def _sentence_cut(text: str, cut: int, holdback: int) -> int:
    """The end of the last whole sentence before `cut` (0: none yet). Text with no sentence
    ends (code, lists) is released at a space once it grows well past the hold-back."""
    best = 0
    for end in _SENTENCE_ENDS:
        found = text.rfind(end, 0, cut)
        if found >= 0:
            best = max(best, found + len(end))
    if best == 0 and cut > holdback * 8:
        best = text.rfind(" ", 0, cut) + 1
    return best
