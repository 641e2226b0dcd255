"""Splitting a document's text into chunks: by structure first (pages, headings, paragraphs),
then by size, with overlap between neighbours of the same section. Pure CPU work: run it in a
worker thread.

Sizes are in estimated tokens, about four characters a token (as the prompt's budget counts).
"""

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from app.files.extract import Page

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
SECTION_MAX = 300


@dataclass(frozen=True)
class Chunk:
    position: int
    text: str
    page: int | None
    section: str | None


def _tokens(text: str) -> int:
    return max(1, round(len(text) / 4))


def _blocks(text: str) -> Iterator[tuple[str | None, str]]:
    """(heading, None) for a heading, (None, paragraph) for the text between them."""
    for paragraph in _PARAGRAPH_BREAK.split(text):
        lines = paragraph.strip("\n").splitlines()
        body: list[str] = []
        for index, line in enumerate(lines):
            heading = _HEADING.match(line)
            setext = index + 1 < len(lines) and _SETEXT.match(lines[index + 1]) and line.strip()
            if heading:
                if body:
                    yield None, "\n".join(body)
                    body = []
                yield heading.group(2).strip(), ""
            elif setext:
                if body:
                    yield None, "\n".join(body)
                    body = []
                yield line.strip(), ""
            elif _SETEXT.match(line) and index > 0 and lines[index - 1].strip():
                continue  # the underline of a setext heading, already yielded
            else:
                body.append(line)
        if body and "\n".join(body).strip():
            yield None, "\n".join(body).strip()


def _split_long(text: str, size: int, overlap: int) -> list[str]:
    """A paragraph longer than a chunk, cut at words into pieces of `size` tokens that share
    `overlap` tokens with the piece before."""
    words = text.split()
    pieces: list[str] = []
    start = 0
    while start < len(words):
        length = 0
        end = start
        while end < len(words) and (length + _tokens(words[end]) <= size or end == start):
            length += _tokens(words[end] + " ")
            end += 1
        pieces.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        back, kept = end, 0
        while back > start + 1 and kept + _tokens(words[back - 1]) <= overlap:
            back -= 1
            kept += _tokens(words[back] + " ")
        start = back
    return pieces


def _tail(text: str, overlap: int) -> str:
    """The last `overlap` tokens of a chunk (whole words), to open the next one with."""
    if overlap <= 0:
        return ""
    words = text.split()
    kept: list[str] = []
    length = 0
    for word in reversed(words):
        if length + _tokens(word + " ") > overlap:
            break
        kept.append(word)
        length += _tokens(word + " ")
    return " ".join(reversed(kept))


def chunk_pages(
    pages: Sequence[Page], *, size: int, overlap: int, max_chunks: int
) -> tuple[list[Chunk], bool]:
    """The chunks of a document (at most `max_chunks`), and whether any were left out."""
    overlap = min(overlap, size // 2)
    chunks: list[Chunk] = []
    section: str | None = None
    parts: list[str] = []
    length = 0
    page_of_parts: int | None = None

    def flush() -> None:
        nonlocal parts, length
        text = "\n\n".join(parts).strip()
        if text:
            chunks.append(Chunk(len(chunks), text, page_of_parts, section))
        parts, length = [], 0

    for page in pages:
        if parts and page.number != page_of_parts:
            flush()
        page_of_parts = page.number
        for heading, paragraph in _blocks(page.text):
            if heading is not None:
                flush()
                section = heading[:SECTION_MAX]
                continue
            cost = _tokens(paragraph)
            if cost > size:
                flush()
                for piece in _split_long(paragraph, size, overlap):
                    parts = [piece]
                    flush()
                continue
            if parts and length + cost > size:
                previous = "\n\n".join(parts)
                flush()
                tail = _tail(previous, overlap)
                if tail:
                    parts, length = [tail], _tokens(tail)
            parts.append(paragraph)
            length += cost
    flush()
    # A heading with its text is the better chunk; a chunk that is only an overlap is not.
    truncated = len(chunks) > max_chunks
    return [c for c in chunks[:max_chunks]], truncated
