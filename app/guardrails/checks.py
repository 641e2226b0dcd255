"""The built-in checks: pure text functions, cheap enough to run on every token of a reply.

- personal data and secrets (`pii`): email addresses, phone numbers, payment card numbers (only
  those passing the Luhn check), IBANs (only those passing the ISO 13616 mod-97 check), and
  secrets by their known shapes (API keys, private keys, bearer tokens, JWTs);
- blocked patterns (`blocked_patterns`, the operator's BLOCKED_PATTERNS regexes);
- prompt injection (`injection`): instructions aimed at the model inside data.

Each finding names its kind and where it is; the text itself is never copied into a finding, so
that what is logged about a finding carries no personal data.
"""

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from app.guardrails.normalise import Folded, fold, spaced_letters

PiiKind = Literal["email", "phone", "payment_card", "iban", "secret"]
PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "payment_card", "iban", "secret")
PiiPolicy = Literal["allow", "redact", "block"]

# What replaces a redacted item in text sent upstream: typed, so the model still knows what
# stood there ("write to [EMAIL]") without seeing it.
PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "payment_card": "[PAYMENT_CARD]",
    "iban": "[IBAN]",
    "secret": "[SECRET]",
}

# The longest text one finding spans, in characters: a reply's check looks this far back into
# text it already released, so a match split across tokens is still seen whole.
MAX_MATCH_CHARS = 160


@dataclass(frozen=True)
class Finding:
    kind: str  # a PII kind, "blocked_pattern" or "injection"
    start: int
    end: int
    # The match reaches the end of the text checked: more text may still make it longer.
    open: bool = False


# --- personal data --------------------------------------------------------------------------

_EMAIL = r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![\w-])"
# International (+CC ...) or national numbers written with separators: 8 to 15 digits in
# groups. Plain digit runs (order numbers, years) are not phone numbers unless they start
# with "+".
_PHONE = (
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4}"
    r"|0\d{1,4}[ .-]\d{2,4}[ .-]\d{2,4}(?:[ .-]\d{2,4})?)(?![\w])"
)
# A run of at least 13 digits, optionally in groups separated by up to two spaces, dashes or
# dots; the card number is then looked for inside it (_card_spans): a card followed by more
# digits ("4111 1111 1111 1111 123", an expiry date) is still one.
_CARD = r"(?<![\d-])\d(?:[ .-]{0,2}\d){12,}(?!\d)"
# Country code, check digits, then 11 to 30 letters or digits, optionally in groups of four.
_IBAN = r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])"
_SECRET = "|".join(
    (
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
        r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",  # OpenAI, Anthropic
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
        r"\bgh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
        r"\bgithub_pat_[A-Za-z0-9_]{22,}",
        r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack
        r"\bAIza[0-9A-Za-z_-]{35}",  # Google API keys
        r"\b(?:sk|rk)_live_[0-9A-Za-z]{16,}",  # Stripe
        r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
        r"(?i:\bbearer\s+)[A-Za-z0-9._~+/-]{20,}=*",  # Authorization: Bearer <token>
    )
)

_PII_PATTERNS: dict[PiiKind, str] = {
    "email": _EMAIL,
    "phone": _PHONE,
    "payment_card": _CARD,
    "iban": _IBAN,
    "secret": _SECRET,
}


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of payment card numbers (ISO/IEC 7812)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# IBAN lengths by country (SWIFT's registry); an IBAN of another length is not one.
_IBAN_TABLE = (
    "AD:24 AE:23 AL:28 AT:20 AZ:28 BA:20 BE:16 BG:22 BH:22 BR:29 BY:28 CH:21 CR:22 CY:28 "
    "CZ:24 DE:22 DK:18 DO:28 EE:20 EG:29 ES:24 FI:18 FO:18 FR:27 GB:22 GE:22 GI:23 GL:18 "
    "GR:27 GT:28 HR:21 HU:28 IE:22 IL:23 IQ:23 IS:26 IT:27 JO:30 KW:30 KZ:20 LB:28 LC:32 "
    "LI:21 LT:20 LU:20 LV:21 MC:27 MD:24 ME:22 MK:19 MR:27 MT:31 MU:30 NL:18 NO:15 PK:24 "
    "PL:28 PS:29 PT:25 QA:29 RO:24 RS:22 SA:24 SC:31 SE:24 SI:19 SK:24 SM:27 ST:25 SV:28 "
    "TL:23 TN:24 TR:26 UA:29 VA:22 VG:24 XK:20"
)
_IBAN_LENGTHS = {entry[:2]: int(entry[3:]) for entry in _IBAN_TABLE.split(" ")}


def iban_valid(text: str) -> bool:
    """ISO 13616: the right length for its country, and mod 97 of the rearranged number is 1."""
    iban = text.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


_CARD_GROUP = re.compile(r"\d+")


def _card_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The card numbers in a run of digit groups: for each group from the left, the longest
    sequence of whole groups holding 13 to 19 digits that is shaped like a card number and
    passes the Luhn check (a greedy match of the whole run would fail the check and hide the
    card inside it: "4111 1111 1111 1111 123", "5500 0000 0000 0004 12 26").

    Card-shaped: one group; groups of four or more digits (4-4-4-4, 4-6-5) with a last group of
    any size; or one digit at a time. A list of short numbers ("12 34 56 ...") is not a card."""
    groups = [(m.start(), m.group()) for m in _CARD_GROUP.finditer(text, start, end)]
    found: list[tuple[int, int]] = []
    first = 0
    while first < len(groups):
        match = None
        digits = ""
        candidates: list[tuple[int, str]] = []
        for last in range(first, len(groups)):
            size = len(groups[last][1])
            digits += groups[last][1]
            if len(digits) > 19:
                break
            if len(digits) >= 13:
                candidates.append((last, digits))
            previous = len(groups[last - 1][1]) if last > first else size
            single = size == 1 and previous == 1
            if size < 4 and not single:
                break  # only the last group of a candidate may be short
        for last, number in reversed(candidates):
            if luhn_valid(number):
                match = last
                break
        if match is None:
            first += 1
            continue
        begin, final = groups[first][0], groups[match]
        found.append((begin, final[0] + len(final[1])))
        first = match + 1
    return found


def _iban_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The IBAN in a match: as many characters as its country's IBANs have, from the first
    group that starts like one (a greedy match may run on into the words that follow:
    "DE89 3704 0044 0532 0130 00 EUR 500")."""
    starts = [start, *(i for i in range(start + 1, end) if text[i - 1] == " " != text[i])]
    for at in starts:
        length = _IBAN_LENGTHS.get(text[at : at + 2])
        if length is None or not text[at + 2 : at + 4].isdigit():
            continue
        count, index = 0, at
        while index < len(text) and count < length:
            char = text[index]
            if char.isascii() and char.isalnum():
                count += 1
            elif char != " " or text[index - 1] == " ":
                break
            index += 1
        ends_here = index == len(text) or not text[index].isalnum()
        if count == length and ends_here and iban_valid(text[at:index]):
            return [(at, index)]
    return []


def _phone_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    digits = sum(char.isdigit() for char in text[start:end])
    return [(start, end)] if 8 <= digits <= 15 else []


# Kinds whose matches are checked (a checksum, a digit count) and may hold the item in part.
_REFINE: dict[str, Callable[[str, int, int], list[tuple[int, int]]]] = {
    "payment_card": _card_spans,
    "iban": _iban_spans,
    "phone": _phone_spans,
}


class PatternSet:
    """Several kinds of pattern as one compiled alternation: one pass over the text finds them
    all (the reply check runs this for every token). The text is read folded (normalise.py:
    fullwidth digits, other scripts' digits, invisible characters, NBSP and dashes count as
    what they look like); findings are in the original text's offsets. Kinds whose matches need
    a checksum are checked after the match, every candidate in it."""

    def __init__(self, patterns: Sequence[tuple[str, str]], *, flags: int = 0) -> None:
        self.kinds = [kind for kind, _pattern in patterns]
        self._groups = {f"g{i}": kind for i, (kind, _pattern) in enumerate(patterns)}
        alternation = "|".join(f"(?P<g{i}>{pattern})" for i, (_k, pattern) in enumerate(patterns))
        self._regex = re.compile(alternation, flags) if patterns else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def find(self, text: str, start: int = 0) -> list[Finding]:
        return self.find_folded(fold(text), start)

    def find_folded(self, folded: Folded, start: int = 0) -> list[Finding]:
        """Findings in `folded` from the original offset `start` on, in original offsets."""
        if self._regex is None:
            return []
        text = folded.text
        found: list[Finding] = []
        for match in self._regex.finditer(text, _folded_offset(folded, start)):
            group = match.lastgroup
            if group is None:
                continue
            kind = self._groups[group]
            refine = _REFINE.get(kind)
            spans = (
                refine(text, match.start(), match.end())
                if refine is not None
                else [(match.start(), match.end())]
            )
            for begin, end in spans:
                original = folded.original(begin, end)
                found.append(Finding(kind, *original, open=end == len(text)))
        return found


def _folded_offset(folded: Folded, original: int) -> int:
    if folded.starts is None or original <= 0:
        return original
    return bisect_left(folded.starts, original, 0, len(folded.starts) - 1)


def pii_patterns(kinds: Iterable[str]) -> list[tuple[str, str]]:
    """(kind, regex) of the given PII kinds, in a fixed order (cards before phones: a card
    number written in groups must not be taken for a phone number)."""
    wanted = set(kinds)
    order: tuple[PiiKind, ...] = ("secret", "email", "iban", "payment_card", "phone")
    return [(kind, _PII_PATTERNS[kind]) for kind in order if kind in wanted]


def find_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> list[Finding]:
    """Every item of personal data or secret of the given kinds in `text`."""
    return PatternSet(pii_patterns(kinds)).find(text)


def redact(text: str, findings: Sequence[Finding]) -> str:
    """`text` with each finding replaced by its kind's placeholder."""
    if not findings:
        return text
    out: list[str] = []
    position = 0
    for finding in sorted(findings, key=lambda f: f.start):
        if finding.start < position:
            continue  # overlapping: the earlier one already covers it
        out.append(text[position : finding.start])
        out.append(PLACEHOLDERS.get(finding.kind, "[REDACTED]"))
        position = finding.end
    out.append(text[position:])
    return "".join(out)


# --- prompt injection -----------------------------------------------------------------------

# Phrases that address the model rather than inform a reader: instructions to drop its rules,
# take a new role, reveal its prompt, or act (send, call, run) on the data's behalf. Documents
# quote such phrases legitimately too (this module does), so a match is flagged and recorded,
# and the data is still sent, quoted and marked as data.
_INJECTION = "|".join(
    (
        r"\b(?:ignore|disregard|forget|override)\b[^.]{0,40}?\b(?:previous|prior|above|earlier"
        r"|preceding|all|your|system)\b[^.]{0,30}?\b(?:instructions?|prompts?|rules|directions"
        r"|guidelines|context)\b",
        r"\byou\s+are\s+now\b|\bfrom\s+now\s+on,?\s+you\s+(?:are|will|must)\b",
        r"\bact\s+as\s+(?:an?\s+)?(?:unrestricted|jailbroken|dan)\b|\bdeveloper\s+mode\b"
        r"|\bDAN\s+mode\b",
        r"\b(?:reveal|print|show|repeat|output|leak)\b[^.]{0,30}?\b(?:system\s+prompt|your\s+"
        r"(?:instructions|prompt|rules))\b",
        r"\bnew\s+(?:instructions|system\s+prompt)\s*:",
        r"(?:^|\n)\s*(?:system|assistant)\s*:\s",
        r"<\|(?:im_start|im_end|system|endoftext|begin_of_text|start_header_id)\|>|\[/?INST\]",
        r"\b(?:do\s+not|don't)\s+(?:tell|inform|mention\s+(?:this\s+)?to)\s+the\s+user\b",
        r"\b(?:AI|assistant|model|LLM|chatbot)s?\b[^.]{0,20}?\b(?:must|should|shall)\b[^.]{0,40}?"
        r"\b(?:ignore|send|email|forward|exfiltrate|call|visit|execute|run)\b",
    )
)
_INJECTION_REGEX = re.compile(_INJECTION, re.IGNORECASE)


def find_injection(text: str) -> list[Finding]:
    """Instructions aimed at the model inside data (documents, retrieved chunks), however they
    are spelt: fullwidth, with invisible characters or look-alike letters, split over lines."""
    folded = fold(text, confusables=True)
    return [
        Finding("injection", *folded.original(m.start(), m.end()))
        for m in _INJECTION_REGEX.finditer(folded.text)
    ]


# --- blocked patterns -----------------------------------------------------------------------


class BlockedPatterns:
    """BLOCKED_PATTERNS, each compiled on its own, case-insensitive, as the input check always
    did (an operator's pattern may use groups or back-references of its own).

    Each pattern is tried on the text as written, on the text folded with look-alike letters
    (normalise.py: fullwidth letters, zero-width characters and soft hyphens, Cyrillic or Greek
    look-alikes, combining marks), and on that with words spelt letter by letter joined
    (`f o r b i d d e n`)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._regexes = [re.compile(p, re.IGNORECASE) for p in patterns]

    def __bool__(self) -> bool:
        return bool(self._regexes)

    def find(self, text: str, start: int = 0) -> list[Finding]:
        if not self._regexes:
            return []
        views = [Folded(text)]
        folded = fold(text, confusables=True)
        if folded.starts is not None:
            views.append(folded)
        joined = spaced_letters(folded)
        if joined is not None:
            views.append(joined)
        found: list[Finding] = []
        for regex in self._regexes:
            for view in views:
                match = regex.search(view.text, _folded_offset(view, start))
                if match is not None:
                    begin, end = view.original(match.start(), match.end())
                    found.append(
                        Finding("blocked_pattern", begin, end, open=match.end() == len(view.text))
                    )
                    break
        return found


# --- closing tags of quoted data ----------------------------------------------------------


def neutralise_closing_tags(text: str, tag: str) -> str:
    """`text` with every closing tag `</tag` made harmless (its `<` written `&lt;`), however it
    is spelt: `</ tag>`, `< /tag>`, with invisible characters, fullwidth or look-alike letters.
    Quoted data (documents, retrieved chunks) can then never end its own quotation."""
    folded = fold(text, confusables=True)
    regex = _closing_tag_regex(tag)
    matches = list(regex.finditer(folded.text))
    if not matches:
        return text
    out: list[str] = []
    position = 0
    for match in matches:
        begin, _end = folded.original(match.start(), match.start() + 1)
        out.append(text[position:begin])
        out.append("&lt;")
        position = begin + 1 if text[begin : begin + 1] else begin
    out.append(text[position:])
    return "".join(out)


_CLOSING_TAGS: dict[str, re.Pattern[str]] = {}


def _closing_tag_regex(tag: str) -> re.Pattern[str]:
    regex = _CLOSING_TAGS.get(tag)
    if regex is None:
        regex = re.compile(rf"<\s*/\s*{re.escape(tag)}", re.IGNORECASE)
        _CLOSING_TAGS[tag] = regex
    return regex
