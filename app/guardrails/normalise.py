"""Text as the checks read it: Unicode spellings that look like ASCII folded to ASCII, with a map
back to the original offsets, so that a finding in the folded text redacts the right span of the
text as written. The text itself (what is stored and what is sent) is never changed here.

Two foldings:
- `fold(text)`, for personal data, secrets, injection and closing tags: compatibility forms
  (NFKC: fullwidth letters and digits, mathematical alphanumerics, ligatures, NBSP and other
  spaces), invisible characters dropped (zero-width space, joiners, soft hyphen, BOM, bidi
  controls: every format character), combining marks dropped, decimal digits of any script
  made ASCII (Arabic-Indic `٤` is `4`), dashes made `-`, the ideographic and small full stops
  and small commercial at made `.` and `@`;
- `fold(text, confusables=True)`, for blocked patterns, adds Latin look-alikes from Cyrillic
  and Greek (`forbidden` spelt with a Cyrillic `o`, U+043E).

ASCII text (nearly every token of a reply) takes a fast path: it is returned as it is, with no
map. `spaced_letters()` finds words written letter by letter (`f o r b i d d e n`) so that blocked
patterns can be tried on them joined.
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Punctuation NFKC leaves alone but that reads as its ASCII counterpart in an address or number.
_PUNCTUATION = {
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    "\u30fc": "-",  # katakana prolonged sound mark, used as a dash
    "\u3002": ".",  # ideographic full stop
    "\uff61": ".",  # halfwidth ideographic full stop
    "\u2024": ".",  # one dot leader
    "\u00b7": ".",  # middle dot
    "\u2219": ".",  # bullet operator
}

# Latin look-alikes (a hand-written subset of Unicode's confusables): Cyrillic and Greek letters
# that render like Latin ones in common fonts.
# By character name, so that the table reads as what it is.
_CONFUSABLES = {
    unicodedata.lookup(name): latin
    for name, latin in (
        ("CYRILLIC SMALL LETTER A", "a"),
        ("CYRILLIC SMALL LETTER VE", "b"),
        ("CYRILLIC SMALL LETTER IE", "e"),
        ("CYRILLIC SMALL LETTER IO", "e"),
        ("CYRILLIC SMALL LETTER SHHA", "h"),
        ("CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I", "i"),
        ("CYRILLIC SMALL LETTER YI", "i"),
        ("CYRILLIC SMALL LETTER JE", "j"),
        ("CYRILLIC SMALL LETTER KA", "k"),
        ("CYRILLIC SMALL LETTER EM", "m"),
        ("CYRILLIC SMALL LETTER EN", "h"),
        ("CYRILLIC SMALL LETTER O", "o"),
        ("CYRILLIC SMALL LETTER ER", "p"),
        ("CYRILLIC SMALL LETTER ES", "c"),
        ("CYRILLIC SMALL LETTER TE", "t"),
        ("CYRILLIC SMALL LETTER U", "y"),
        ("CYRILLIC SMALL LETTER HA", "x"),
        ("CYRILLIC SMALL LETTER DZE", "s"),
        ("CYRILLIC SMALL LETTER KOMI DE", "d"),
        ("CYRILLIC SMALL LETTER QA", "q"),
        ("CYRILLIC SMALL LETTER WE", "w"),
        ("LATIN SMALL LETTER SCRIPT G", "g"),
        ("CYRILLIC SMALL LETTER PALOCHKA", "l"),
        ("CYRILLIC SMALL LETTER SOFT SIGN", "b"),
        ("CYRILLIC SMALL LETTER GHE", "r"),
        ("CYRILLIC SMALL LETTER PE", "n"),
        ("CYRILLIC CAPITAL LETTER A", "A"),
        ("CYRILLIC CAPITAL LETTER VE", "B"),
        ("CYRILLIC CAPITAL LETTER IE", "E"),
        ("CYRILLIC CAPITAL LETTER IO", "E"),
        ("CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I", "I"),
        ("CYRILLIC CAPITAL LETTER YI", "I"),
        ("CYRILLIC CAPITAL LETTER JE", "J"),
        ("CYRILLIC CAPITAL LETTER KA", "K"),
        ("CYRILLIC CAPITAL LETTER EM", "M"),
        ("CYRILLIC CAPITAL LETTER EN", "H"),
        ("CYRILLIC CAPITAL LETTER O", "O"),
        ("CYRILLIC CAPITAL LETTER ER", "P"),
        ("CYRILLIC CAPITAL LETTER ES", "C"),
        ("CYRILLIC CAPITAL LETTER TE", "T"),
        ("CYRILLIC CAPITAL LETTER U", "Y"),
        ("CYRILLIC CAPITAL LETTER HA", "X"),
        ("CYRILLIC CAPITAL LETTER DZE", "S"),
        ("CYRILLIC CAPITAL LETTER KOMI DE", "D"),
        ("CYRILLIC CAPITAL LETTER QA", "Q"),
        ("CYRILLIC CAPITAL LETTER WE", "W"),
        ("CYRILLIC LETTER PALOCHKA", "I"),
        ("GREEK CAPITAL LETTER ZETA", "Z"),
        ("GREEK SMALL LETTER ALPHA", "a"),
        ("GREEK SMALL LETTER BETA", "b"),
        ("GREEK SMALL LETTER EPSILON", "e"),
        ("GREEK SMALL LETTER ETA", "n"),
        ("GREEK SMALL LETTER IOTA", "i"),
        ("GREEK SMALL LETTER KAPPA", "k"),
        ("GREEK SMALL LETTER NU", "v"),
        ("GREEK SMALL LETTER OMICRON", "o"),
        ("GREEK SMALL LETTER RHO", "p"),
        ("GREEK SMALL LETTER TAU", "t"),
        ("GREEK SMALL LETTER UPSILON", "u"),
        ("GREEK SMALL LETTER CHI", "x"),
        ("GREEK SMALL LETTER GAMMA", "y"),
        ("GREEK SMALL LETTER OMEGA", "w"),
        ("GREEK CAPITAL LETTER ALPHA", "A"),
        ("GREEK CAPITAL LETTER BETA", "B"),
        ("GREEK CAPITAL LETTER EPSILON", "E"),
        ("GREEK CAPITAL LETTER ETA", "H"),
        ("GREEK CAPITAL LETTER IOTA", "I"),
        ("GREEK CAPITAL LETTER KAPPA", "K"),
        ("GREEK CAPITAL LETTER MU", "M"),
        ("GREEK CAPITAL LETTER NU", "N"),
        ("GREEK CAPITAL LETTER OMICRON", "O"),
        ("GREEK CAPITAL LETTER RHO", "P"),
        ("GREEK CAPITAL LETTER TAU", "T"),
        ("GREEK CAPITAL LETTER UPSILON", "Y"),
        ("GREEK CAPITAL LETTER CHI", "X"),
    )
}


@lru_cache(maxsize=4096)
def _fold_char(char: str, confusables: bool) -> str:
    """What one character reads as: "" for an invisible one or a mark."""
    if confusables and char in _CONFUSABLES:
        return _CONFUSABLES[char]
    if char in _PUNCTUATION:
        return _PUNCTUATION[char]
    out: list[str] = []
    for part in unicodedata.normalize("NFKD", char):
        category = unicodedata.category(part)
        if category in ("Cf", "Mn", "Me"):
            continue  # zero-width characters, soft hyphens, bidi controls; combining marks
        if category == "Nd":
            out.append(str(unicodedata.decimal(part)))
        elif category == "Zs":
            out.append(" ")
        elif confusables and part in _CONFUSABLES:
            out.append(_CONFUSABLES[part])
        else:
            out.append(_PUNCTUATION.get(part, part))
    return "".join(out)


@dataclass(frozen=True)
class Folded:
    """Folded text and, unless it is the original, where each of its characters came from."""

    text: str
    # starts[i]: the original offset of folded character i; one more entry for the end.
    starts: list[int] | None = None

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that the folded span [start, end) came from."""
        if self.starts is None:
            return start, end
        if end <= start:
            return self.starts[start], self.starts[start]
        # The end is just after the original character of the span's last folded character.
        return self.starts[start], self.starts[end - 1] + 1


def fold(text: str, *, confusables: bool = False) -> Folded:
    """The text as the checks read it (see the module's docstring)."""
    if text.isascii():
        return Folded(text)
    out: list[str] = []
    starts: list[int] = []
    for index, char in enumerate(text):
        if char.isascii():
            out.append(char)
            starts.append(index)
            continue
        folded = _fold_char(char, confusables)
        out.append(folded)
        starts.extend([index] * len(folded))
    starts.append(len(text))
    return Folded("".join(out), starts)


# Three or more single letters or digits, each followed by one separator: "f o r b i d".
_SPACED = re.compile(r"(?<![^\W_])(?:[^\W_][ .\-_*·|/]){2,}[^\W_](?![^\W_])")


def spaced_letters(folded: Folded) -> Folded | None:
    """The folded text with words spelt letter by letter joined up ("f o r b i d d e n" becomes
    "forbidden"), mapped back to the original; None when it has none."""
    text = folded.text
    if _SPACED.search(text) is None:
        return None
    base = folded.starts if folded.starts is not None else list(range(len(text) + 1))
    out: list[str] = []
    starts: list[int] = []
    position = 0
    for match in _SPACED.finditer(text):
        out.append(text[position : match.start()])
        starts.extend(base[position : match.start()])
        for index in range(match.start(), match.end(), 2):
            out.append(text[index])
            starts.append(base[index])
        position = match.end()
    out.append(text[position:])
    starts.extend(base[position : len(text)])
    starts.append(base[len(text)])
    return Folded("".join(out), starts)
