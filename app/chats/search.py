"""Search over chat titles and message text: the same word-prefix semantics on both backends.

A query matches a chat when every word in it starts a word of the chat's title, or every word
starts a word of one of its messages ("lis trip" finds "Trip to Lisbon"). The indexes come from
migration 0002: FTS5 tables on SQLite, GIN indexes on to_tsvector('simple', ...) on Postgres.
"""

import re
from dataclasses import dataclass

WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 8
MAX_WORD_LENGTH = 64

# Above this many matching messages (over all users: the planner's estimate on Postgres, a capped
# count on SQLite), looking up every match's chat costs more than walking the user's chats in
# list order and checking each, which stops after a page since most chats match. Below it the
# walk could cross every chat of a big account for a handful of hits. Measured on 1M messages.
DENSE_MATCHES = 10_000


@dataclass(frozen=True)
class SearchTerms:
    words: tuple[str, ...]

    @classmethod
    def parse(cls, query: str | None) -> "SearchTerms | None":
        """The query's words, lower-cased; None when it has none (then nothing is filtered)."""
        words = [w.casefold()[:MAX_WORD_LENGTH] for w in WORD.findall(query or "")]
        unique = tuple(dict.fromkeys(words))[:MAX_WORDS]
        return cls(unique) if unique else None

    def fts5(self) -> str:
        """An FTS5 MATCH expression: each word as a quoted prefix, all required."""
        return " ".join(f'"{word}"*' for word in self.words)

    def tsquery(self) -> str:
        """A to_tsquery() expression: each word as a prefix, all required."""
        return " & ".join(f"{word}:*" for word in self.words)
