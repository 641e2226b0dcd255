"""Reading an uploaded export one conversation at a time (synchronous: it runs in a worker
thread, a batch per call).

A JSON file is parsed incrementally with ijson: memory holds one conversation, not the file. A
.zip is read member by member, each decompressed as it is parsed: its conversations.json
(ChatGPT, Claude), or else every JSON file in it (Parley's own bulk export).
"""

import logging
import re
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Protocol

import ijson

from app.chats.transfer.errors import UnsupportedImport
from app.chats.transfer.formats import READERS, Unreadable, detect, title_of
from app.chats.transfer.tree import ChatRows, build

logger = logging.getLogger("parley.imports")

_ZIP_MAGIC = b"PK\x03\x04"
_WHITESPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"
# A batch ends after this many conversations or messages, whichever comes first.
BATCH_CONVERSATIONS = 250
BATCH_MESSAGES = 5000
# A zip may expand to at most this many times the upload limit (a zip bomb is cut off there).
MAX_EXPANSION = 10


@dataclass(frozen=True)
class Failure:
    index: int
    title: str | None
    reason: str
    # The file itself broke here (truncated or damaged): nothing after it was read.
    broken: bool = False


@dataclass(frozen=True)
class Read:
    index: int
    rows: ChatRows


class _BrokenFile(Exception):
    pass


# JSON nested deeper than this is refused: real exports nest about 10 levels, and ijson's cost
# for a path grows with the square of its depth (100,000 brackets would take gigabytes).
MAX_NESTING = 100
# What nesting depends on (quotes, backslashes, brackets) kept, every other byte made an "a".
_OTHERS_AS_A = bytes(c if c in b'"\\[]{}' else ord("a") for c in range(256))
# An escape: a backslash and the character after it (never a string's delimiter).
_ESCAPE = re.compile(rb"\\.", re.DOTALL)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _NestingGuard:
    """Passes a JSON byte stream through, counting how deep its brackets nest outside strings
    (with bytes.translate, one regular expression and split: cheaper than parsing), and stops
    the reading past MAX_NESTING before the parser gets there."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.depth = 0
        # An open string from the last chunk: '"', or '"\\' when its last character escapes
        # the next one.
        self.carry = b""

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if data:
            self._scan(data)
        return data

    def _scan(self, data: bytes) -> None:
        text = self.carry + data.translate(_OTHERS_AS_A)
        # With escapes taken out, every quote left opens or closes a string: split on them, the
        # even pieces are outside strings. (Linear: no pattern that could backtrack.)
        unescaped = _ESCAPE.sub(b"a", text)
        pieces = unescaped.split(b'"')
        outside = b"".join(pieces[0::2])
        self.carry = b""
        if len(pieces) % 2 == 0:  # a string that goes on in the next chunk
            self.carry = b'"\\' if unescaped.endswith(b"\\") else b'"'
        depth = self.depth
        for char in outside.replace(b"a", b""):
            if char == 91 or char == 123:  # [ {
                depth += 1
                if depth > MAX_NESTING:
                    raise _BrokenFile(f"Its JSON nests more than {MAX_NESTING} levels deep.")
            elif char == 93 or char == 125:  # ] }
                depth -= 1
        self.depth = depth


def _json_items(raw: Readable) -> Iterator[Any]:
    """The conversations of one JSON document: the items of a top-level array, or the document
    itself when it is one object."""
    stream = _NestingGuard(raw)
    head = stream.read(64)
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    stripped = head.lstrip(_WHITESPACE)
    while not stripped and head:
        head = stream.read(64)
        stripped = head.lstrip(_WHITESPACE)

    class _Rest:
        """The stream with the bytes already read put back in front."""

        def __init__(self) -> None:
            self.pending = stripped

        def read(self, size: int = -1) -> bytes:
            if size == 0:  # ijson asks for nothing first, to learn bytes from str
                return b""
            if self.pending:
                data, self.pending = self.pending, b""
                return data
            return stream.read(size)

    if stripped[:1] == b"[":
        prefix = "item"
    elif stripped[:1] == b"{":
        prefix = ""
    else:
        raise _BrokenFile("It is not JSON: it starts with neither [ nor {.")
    try:
        yield from ijson.items(_Rest(), prefix, use_float=True)
    except ijson.JSONError as exc:
        raise _BrokenFile(f"The JSON is broken: {str(exc)[:200]}") from exc


class _Capped:
    """A zip member's stream that stops the import past `budget[0]` bytes, counted across the
    members of one zip."""

    def __init__(self, stream: Readable, budget: list[int]) -> None:
        self.stream = stream
        self.budget = budget

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.budget[0] -= len(data)
        if self.budget[0] < 0:
            raise _BrokenFile("The .zip expands to more than Parley reads.")
        return data


class ConversationReader:
    def __init__(
        self, spool: IO[bytes], *, user_id: uuid.UUID, now: datetime, max_bytes: int
    ) -> None:
        self.spool = spool
        self.max_bytes = max_bytes
        self.user_id = user_id
        self.now = now
        self.format: str | None = None
        self._items: Iterator[Any] = iter(())
        self._index = 0
        self._done = False
        self._zip: zipfile.ZipFile | None = None

    # --- opening --------------------------------------------------------------------------

    def open(self) -> None:
        """Finds the conversations in the file and checks the first: UnsupportedImport (422)
        when it holds none, or the first is not of a known format."""
        head = self.spool.read(4)
        self.spool.seek(0)
        if not head:
            raise UnsupportedImport("The file is empty.")
        if head == _ZIP_MAGIC:
            self._items = self._zip_items()
        else:
            self._items = _json_items(self.spool)
        try:
            first = next(self._items, None)
        except _BrokenFile as exc:
            raise UnsupportedImport(str(exc)) from exc
        if first is None:
            raise UnsupportedImport("The file holds no conversations.")
        self.format = detect(first)
        if self.format is None:
            raise UnsupportedImport("Its first conversation is not in a format Parley knows.")
        self._first: Any = first

    def _zip_items(self) -> Iterator[Any]:
        try:
            archive = self._zip = zipfile.ZipFile(self.spool)
            names = [
                info.filename
                for info in archive.infolist()
                if not info.is_dir()
                and info.filename.lower().endswith(".json")
                and not info.filename.startswith("__MACOSX/")
            ]
        except zipfile.BadZipFile as exc:
            raise _BrokenFile("The .zip file is damaged.") from exc
        conversations = sorted(
            (name for name in names if name.rsplit("/", 1)[-1] == "conversations.json"),
            key=lambda name: name.count("/"),
        )
        chosen = conversations[:1] or sorted(names)
        if not chosen:
            raise _BrokenFile("The .zip holds no conversations.json or other JSON file.")
        budget = [self.max_bytes * MAX_EXPANSION]
        for name in chosen:
            try:
                with archive.open(name) as member:
                    yield from _json_items(_Capped(member, budget))
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise _BrokenFile(f"{name} in the .zip is damaged.") from exc

    # --- batches ----------------------------------------------------------------------------

    def next_batch(self) -> list[Read | Failure]:
        """The next conversations, read and built (or failed); empty at the end."""
        batch: list[Read | Failure] = []
        messages = 0
        while not self._done and len(batch) < BATCH_CONVERSATIONS and messages < BATCH_MESSAGES:
            try:
                if self._index == 0:
                    item = self._first
                    del self._first
                else:
                    item = next(self._items)
            except StopIteration:
                self._done = True
                break
            except _BrokenFile as exc:
                self._done = True
                batch.append(
                    Failure(self._index, None, f"{exc} Nothing after it was read.", broken=True)
                )
                break
            outcome = self._one(self._index, item)
            self._index += 1
            if isinstance(outcome, Read):
                messages += len(outcome.rows.messages)
            batch.append(outcome)
        return batch

    def _one(self, index: int, item: Any) -> Read | Failure:
        title = title_of(item)
        found = detect(item)
        if found is None:
            return Failure(index, title, "It is not a conversation in a format Parley knows.")
        try:
            conversation = READERS[found](item)
            return Read(index, build(conversation, user_id=self.user_id, now=self.now))
        except Unreadable as exc:
            return Failure(index, title, str(exc))
        except Exception as exc:  # one bad conversation never stops the others
            logger.warning("an imported conversation could not be read", exc_info=True)
            return Failure(index, title, f"It could not be read ({type(exc).__name__}).")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        self.spool.close()
