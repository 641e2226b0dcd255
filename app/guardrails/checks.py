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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

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
# 13 to 19 digits, optionally in groups separated by single spaces or dashes.
_CARD = r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])"
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


def _card_ok(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    # Separators, when used, are used consistently (4-4-4-4, 4-6-5): not a list of numbers.
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _phone_ok(text: str) -> bool:
    digits = sum(char.isdigit() for char in text)
    return 8 <= digits <= 15


_VALIDATORS: dict[str, Callable[[str], bool]] = {
    "payment_card": _card_ok,
    "iban": iban_valid,
    "phone": _phone_ok,
}


class PatternSet:
    """Several kinds of pattern as one compiled alternation: one pass over the text finds them
    all (the reply check runs this for every token). Kinds whose matches need a checksum are
    validated after the match."""

    def __init__(self, patterns: Sequence[tuple[str, str]], *, flags: int = 0) -> None:
        self.kinds = [kind for kind, _pattern in patterns]
        self._groups = {f"g{i}": kind for i, (kind, _pattern) in enumerate(patterns)}
        alternation = "|".join(f"(?P<g{i}>{pattern})" for i, (_k, pattern) in enumerate(patterns))
        self._regex = re.compile(alternation, flags) if patterns else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def find(self, text: str, start: int = 0) -> list[Finding]:
        if self._regex is None:
            return []
        found: list[Finding] = []
        for match in self._regex.finditer(text, start):
            group = match.lastgroup
            if group is None:
                continue
            kind = self._groups[group]
            validate = _VALIDATORS.get(kind)
            if validate is not None and not validate(match.group()):
                continue
            found.append(Finding(kind, match.start(), match.end()))
        return found


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
        r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}?\b(?:previous|prior|above|earlier"
        r"|preceding|all|your|system)\b[^.\n]{0,30}?\b(?:instructions?|prompts?|rules|directions"
        r"|guidelines|context)\b",
        r"\byou are now\b|\bfrom now on,? you (?:are|will|must)\b",
        r"\bact as (?:an? )?(?:unrestricted|jailbroken|dan)\b|\bdeveloper mode\b|\bDAN mode\b",
        r"\b(?:reveal|print|show|repeat|output|leak)\b[^.\n]{0,30}?\b(?:system prompt|your "
        r"(?:instructions|prompt|rules))\b",
        r"\bnew (?:instructions|system prompt)\s*:",
        r"(?:^|\n)\s*(?:system|assistant)\s*:\s",
        r"<\|(?:im_start|im_end|system|endoftext|begin_of_text|start_header_id)\|>|\[/?INST\]",
        r"\b(?:do not|don't) (?:tell|inform|mention (?:this )?to) the user\b",
        r"\b(?:AI|assistant|model|LLM|chatbot)s?\b[^.\n]{0,20}?\b(?:must|should|shall)\b[^.\n]{0,40}?"
        r"\b(?:ignore|send|email|forward|exfiltrate|call|visit|execute|run)\b",
    )
)
_INJECTION_REGEX = re.compile(_INJECTION, re.IGNORECASE)


def find_injection(text: str) -> list[Finding]:
    """Instructions aimed at the model inside data (documents, retrieved chunks)."""
    return [Finding("injection", m.start(), m.end()) for m in _INJECTION_REGEX.finditer(text)]


# --- blocked patterns -----------------------------------------------------------------------


class BlockedPatterns:
    """BLOCKED_PATTERNS, each compiled on its own, case-insensitive, as the input check always
    did (an operator's pattern may use groups or back-references of its own)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._regexes = [re.compile(p, re.IGNORECASE) for p in patterns]

    def __bool__(self) -> bool:
        return bool(self._regexes)

    def find(self, text: str, start: int = 0) -> list[Finding]:
        found: list[Finding] = []
        for regex in self._regexes:
            match = regex.search(text, start)
            if match is not None:
                found.append(Finding("blocked_pattern", match.start(), match.end()))
        return found
