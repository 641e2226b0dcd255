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
_CONFUSABLES = {
    # Cyrillic
    "\u0430": "a",
    "\u0432": "b",
    "\u0435": "e",
    "\u0451": "e",
    "\u04bb": "h",
    "\u0456": "i",
    "\u0457": "i",
    "\u0458": "j",
    "\u043a": "k",
    "\u043c": "m",
    "\u043d": "h",
    "\u043e": "o",
    "\u0440": "p",
    "\u0441": "c",
    "\u0442": "t",
    "\u0443": "y",
    "\u0445": "x",
    "\u0455": "s",
    "\u0501": "d",
    "\u051b": "q",
    "\u051d": "w",
    "\u0261": "g",
    "\u04cf": "l",
    "\u044c": "b",
    "\u0433": "r",
    "\u043f": "n",
    "\u0410": "A",
    "\u0412": "B",
    "\u0415": "E",
    "\u0401": "E",
    "\u0406": "I",
    "\u0407": "I",
    "\u0408": "J",
    "\u041a": "K",
    "\u041c": "M",
    "\u041d": "H",
    "\u041e": "O",
    "\u0420": "P",
    "\u0421": "C",
    "\u0422": "T",
    "\u0423": "Y",
    "\u0425": "X",
    "\u0405": "S",
    "\u0500": "D",
    "\u051a": "Q",
    "\u051c": "W",
    "\u04c0": "I",
    # Greek
    "\u0396": "Z",
    "\u03b1": "a",
    "\u03b2": "b",
    "\u03b5": "e",
    "\u03b7": "n",
    "\u03b9": "i",
    "\u03ba": "k",
    "\u03bd": "v",
    "\u03bf": "o",
    "\u03c1": "p",
    "\u03c4": "t",
    "\u03c5": "u",
    "\u03c7": "x",
    "\u03b3": "y",
    "\u03c9": "w",
    "\u0391": "A",
    "\u0392": "B",
    "\u0395": "E",
    "\u0397": "H",
    "\u0399": "I",
    "\u039a": "K",
    "\u039c": "M",
    "\u039d": "N",
    "\u039f": "O",
    "\u03a1": "P",
    "\u03a4": "T",
    "\u03a5": "Y",
    "\u03a7": "X",
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
