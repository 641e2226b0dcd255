"""Documents: checked at upload, and their text extracted for prompts.

pypdf reads PDFs; Word documents are read by a streaming XML parser over `word/document.xml`
alone (no other part is ever inflated); the text formats are read as they are (they were
checked to be UTF-8 at upload). Callers run all of it off the event loop (app/files/sandbox.py:
in a worker process that is killed past EXTRACT_MAX_SECONDS), with caps on pages and characters.
"""

import logging
import xml.parsers.expat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from app.files.detect import DOCX, PDF
from app.files.errors import (
    CorruptFile,
    DocumentEncrypted,
    DocumentHasNoText,
    DocumentTooLarge,
    DocumentUnreadable,
    UnsupportedFileType,
)

logger = logging.getLogger("parley.files")

Source = Path | BinaryIO

# Zip-based documents (DOCX, the only one Parley accepts) are zip bombs in waiting: a part of a
# few kilobytes may inflate to gigabytes. Whatever part it is (the text, a picture, the styles),
# the archive is refused, at upload and again before any text is read, when its parts together
# would inflate past ZIP_MAX_INFLATED_BYTES, when a part larger than _RATIO_FLOOR inflates more
# than ZIP_MAX_RATIO times, or when it has more than ZIP_MAX_MEMBERS parts. The sizes checked are
# the archive's own, and zipfile holds every part to them when it is read (it stops at the size
# declared, and the CRC then fails), so a part cannot inflate past what was checked.
ZIP_MAX_INFLATED_BYTES = 256 * 1024 * 1024
ZIP_MAX_RATIO = 100
ZIP_MAX_MEMBERS = 10_000
_RATIO_FLOOR = 1024 * 1024
# The main part, the only one read, is parsed as it inflates and refused beyond this size.
DOCX_MAX_XML_BYTES = 64 * 1024 * 1024
_DOCX_MAIN_PART = "word/document.xml"
_READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class ExtractedText:
    text: str
    # Pages in the document (PDF), and whether pages or characters were left out by the caps.
    page_count: int | None
    truncated: bool


# _import_note: pypdf is imported by the functions that use it, in the thread or process that
# reads a document, not at start-up: it would add megabytes to every worker process, most of
# which never reads a document.

# --- at upload ------------------------------------------------------------------------------


def count_pdf_pages(source: Source, *, name: str) -> int | None:
    """A PDF's page count; None when it is encrypted with a password (still accepted: its
    text cannot be read, which extract_text() says when it is attached). CorruptFile when
    pypdf cannot read its structure."""
    from pypdf import PasswordType, PdfReader  # see _import_note

    try:
        reader = PdfReader(source)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            return None
        return len(reader.pages)
    except Exception as exc:  # pypdf raises many kinds for malformed input
        raise CorruptFile(name, "PDF document") from exc


def check_docx(source: Source, *, name: str) -> None:
    """Checks that a ZIP archive is a Word document (not any other ZIP: XLSX, JAR, ...) that
    does not inflate past the limits (DocumentTooLarge). Nothing is inflated here."""
    try:
        with zipfile.ZipFile(source) as archive:
            check_archive(archive, name=name)
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptFile(name, "Word document") from exc
    if _DOCX_MAIN_PART not in names or "[Content_Types].xml" not in names:
        raise UnsupportedFileType(name, "a ZIP archive")


def check_archive(archive: zipfile.ZipFile, *, name: str) -> None:
    """Refuses (DocumentTooLarge) an archive whose parts would inflate too much, together or
    one by one, from the sizes in its central directory (read, never inflated)."""
    members = archive.infolist()
    if len(members) > ZIP_MAX_MEMBERS:
        raise DocumentTooLarge(name, f"has {len(members)} parts (at most {ZIP_MAX_MEMBERS})")
    total = 0
    for member in members:
        total += member.file_size
        if member.file_size > _RATIO_FLOOR and member.file_size > ZIP_MAX_RATIO * max(
            1, member.compress_size
        ):
            raise DocumentTooLarge(
                name,
                f"has a part ({member.filename[:100]}) that would inflate "
                f"{member.file_size // max(1, member.compress_size)} times (at most "
                f"{ZIP_MAX_RATIO})",
            )
    if total > ZIP_MAX_INFLATED_BYTES:
        raise DocumentTooLarge(
            name,
            f"would take {total / 2**20:.0f} MiB unpacked (at most "
            f"{ZIP_MAX_INFLATED_BYTES // 2**20} MiB)",
        )


# --- for prompts ----------------------------------------------------------------------------


def extract_text(
    source: Source, *, media_type: str, name: str, max_pages: int, max_chars: int
) -> ExtractedText:
    """The text of a document, at most `max_pages` pages and `max_chars` characters.

    An encrypted, damaged or text-less PDF or Word document raises a 422 naming the file.
    """
    if media_type == PDF.media_type:
        return _pdf_text(source, name=name, max_pages=max_pages, max_chars=max_chars)
    if media_type == DOCX.media_type:
        return _docx_text(source, name=name, max_chars=max_chars)
    return _plain_text(source, max_chars=max_chars)


def _pdf_text(source: Source, *, name: str, max_pages: int, max_chars: int) -> ExtractedText:
    from pypdf import PasswordType, PdfReader  # see _import_note

    try:
        reader = PdfReader(source)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise DocumentEncrypted(name)
        page_count = len(reader.pages)
        pieces: list[str] = []
        length = 0
        truncated = page_count > max_pages
        for page in reader.pages[:max_pages]:
            text = (page.extract_text() or "").strip()
            if text:
                pieces.append(text)
                length += len(text) + 2
            if length >= max_chars:
                truncated = True
                break
    except DocumentEncrypted:
        raise
    except Exception as exc:
        raise DocumentUnreadable(name) from exc
    return _capped("\n\n".join(pieces), name, page_count, truncated, max_chars)


def _docx_text(source: Source, *, name: str, max_chars: int) -> ExtractedText:
    try:
        if not isinstance(source, Path):
            source.seek(0)
        with zipfile.ZipFile(source) as archive:
            check_archive(archive, name=name)
            reader = _WordText(max_chars)
            with archive.open(_DOCX_MAIN_PART) as part:
                reader.read(part, name=name)
    except (DocumentTooLarge, DocumentUnreadable):
        raise
    except Exception as exc:  # zipfile and expat errors alike, a missing main part
        raise DocumentUnreadable(name) from exc
    return _capped("\n".join(reader.blocks), name, None, reader.full, max_chars)


# The WordprocessingML namespaces: transitional (what Word writes) and strict.
_WORD_NAMESPACES = frozenset(
    {
        "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
        "http://purl.oclc.org/ooxml/wordprocessingml/main",
    }
)
# Inside a run: what stands for a character besides text.
_RUN_CHARACTERS = {"tab": "\t", "ptab": "\t", "br": "\n", "cr": "\n", "noBreakHyphen": "-"}


class _Full(Exception):
    """Enough text was read: the rest of the document is not parsed."""


class _RefusedMarkup(Exception):
    """A DTD or an entity declaration: never in a Word document, the vehicle of entity bombs
    (billion laughs) and external entities (XXE)."""


class _WordText:
    """The text of word/document.xml, read as it inflates (expat, no DTD, no entities): the
    body's paragraphs and table rows in order, a row as its cells joined by " | ", the text
    of nested tables and text boxes with their paragraph. Stops once past `max_chars`."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.blocks: list[str] = []
        self.full = False
        self._length = 0
        self._pending = 0  # characters of the paragraph being read
        self._paragraph: list[str] | None = None
        self._paragraph_depth = 0
        self._runs = 0
        self._in_text = False
        # Open tables, innermost last: each a list of rows of cells of paragraphs.
        self._tables: list[list[list[list[str]]]] = []

    def read(self, part: IO[bytes], *, name: str) -> None:
        parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
        parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.buffer_text = True
        parser.StartDoctypeDeclHandler = self._refuse
        parser.EntityDeclHandler = self._refuse
        parser.ExternalEntityRefHandler = self._refuse_external
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        inflated = 0
        try:
            while chunk := part.read(_READ_BYTES):
                inflated += len(chunk)
                if inflated > DOCX_MAX_XML_BYTES:
                    raise DocumentTooLarge(
                        name, f"has a text part over {DOCX_MAX_XML_BYTES // 2**20} MiB unpacked"
                    )
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
        except _Full:
            self.full = True
            while self._tables:
                self._end_table()
        except _RefusedMarkup as exc:
            raise DocumentUnreadable(name) from exc

    def _refuse(self, *_: object) -> None:
        raise _RefusedMarkup()

    def _refuse_external(self, *_: object) -> int:
        raise _RefusedMarkup()

    @staticmethod
    def _local(tag: str) -> str | None:
        namespace, _, local = tag.rpartition(" ")
        return local if namespace in _WORD_NAMESPACES else None

    def _start(self, tag: str, _attributes: object) -> None:
        local = self._local(tag)
        if local is None:
            return
        if local == "p":
            self._paragraph_depth += 1
            if self._paragraph is None:
                self._paragraph, self._pending = [], 0
            elif self._paragraph:
                self._add("\n")  # a paragraph of a text box inside this one
        elif local == "r":
            self._runs += 1
        elif local == "t":
            self._in_text = True
        elif local in _RUN_CHARACTERS and self._runs:
            self._add(_RUN_CHARACTERS[local])
        elif local == "tbl":
            self._tables.append([])
        elif local == "tr" and self._tables:
            self._tables[-1].append([])
        elif local == "tc" and self._tables and self._tables[-1]:
            self._tables[-1][-1].append([])

    def _end(self, tag: str) -> None:
        local = self._local(tag)
        if local is None:
            return
        if local == "p":
            self._paragraph_depth -= 1
            if self._paragraph_depth == 0 and self._paragraph is not None:
                self._block("".join(self._paragraph))
                self._paragraph = None
        elif local == "r":
            self._runs = max(0, self._runs - 1)
        elif local == "t":
            self._in_text = False
        elif local == "tbl" and self._tables:
            self._end_table()

    def _end_table(self) -> None:
        for row in self._tables.pop():
            cells = ["\n".join(cell).strip() for cell in row]
            if any(cells):
                self._block(" | ".join(cells))

    def _text(self, data: str) -> None:
        if self._in_text and self._paragraph is not None:
            self._add(data)

    def _add(self, text: str) -> None:
        if self._paragraph is None:
            return
        self._paragraph.append(text)
        self._pending += len(text)
        if self._length + self._pending > self.max_chars:
            self._block("".join(self._paragraph))
            self._paragraph = None
            raise _Full()

    def _block(self, text: str) -> None:
        """A paragraph or a row: into the table cell being read, or out as a line."""
        if self._tables and self._tables[-1] and self._tables[-1][-1]:
            self._tables[-1][-1][-1].append(text)
        elif text.strip():
            self.blocks.append(text)
            self._length += len(text) + 1


def _plain_text(source: Source, *, max_chars: int) -> ExtractedText:
    if isinstance(source, Path):
        with source.open("r", encoding="utf-8", errors="replace") as handle:
            text = handle.read(max_chars + 1)
    else:
        # At most 4 bytes a character in UTF-8.
        text = source.read(4 * (max_chars + 1)).decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    return ExtractedText(text=text[:max_chars], page_count=None, truncated=len(text) > max_chars)


def _capped(
    text: str, name: str, page_count: int | None, truncated: bool, max_chars: int
) -> ExtractedText:
    if not text.strip():
        raise DocumentHasNoText(name)
    if len(text) > max_chars:
        text, truncated = text[:max_chars], True
    return ExtractedText(text=text, page_count=page_count, truncated=truncated)


# --- for the knowledge index ----------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    number: int | None  # 1-based PDF page; None for formats without pages
    text: str


@dataclass(frozen=True)
class PagedText:
    pages: list[Page]
    page_count: int | None
    # What the caps left out, as sentences for the user.
    cuts: list[str]


HTML = "text/html"


def extract_pages(
    source: Source, *, media_type: str, name: str, max_pages: int, max_chars: int
) -> PagedText:
    """A document's text page by page (PDF) or whole (other kinds; HTML as its visible text),
    at most `max_pages` pages and `max_chars` characters; what the caps cut is said in `cuts`.
    The errors of extract_text()."""
    if media_type == PDF.media_type:
        return _pdf_pages(source, name=name, max_pages=max_pages, max_chars=max_chars)
    extracted = extract_text(
        source, media_type=media_type, name=name, max_pages=max_pages, max_chars=max_chars
    )
    text = html_to_text(extracted.text) if media_type == HTML else extracted.text
    if not text.strip():
        raise DocumentHasNoText(name)
    cuts = [f"Only the first {max_chars} characters were read."] if extracted.truncated else []
    return PagedText([Page(None, text)], None, cuts)


def _pdf_pages(source: Source, *, name: str, max_pages: int, max_chars: int) -> PagedText:
    from pypdf import PasswordType, PdfReader  # see _import_note

    cuts: list[str] = []
    try:
        reader = PdfReader(source)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise DocumentEncrypted(name)
        page_count = len(reader.pages)
        if page_count > max_pages:
            cuts.append(f"Only the first {max_pages} of {page_count} pages were read.")
        pages: list[Page] = []
        length = 0
        for number, page in enumerate(reader.pages[:max_pages], start=1):
            text = (page.extract_text() or "").strip()
            if length + len(text) > max_chars:
                text = text[: max(0, max_chars - length)]
                cuts.append(f"Only the first {max_chars} characters were read.")
            if text:
                pages.append(Page(number, text))
                length += len(text)
            if length >= max_chars:
                break
    except DocumentEncrypted:
        raise
    except Exception as exc:
        raise DocumentUnreadable(name) from exc
    if not pages:
        raise DocumentHasNoText(name)
    return PagedText(pages, page_count, cuts)


_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    }
)
_HEADINGS = {f"h{level}": level for level in range(1, 7)}


def html_to_text(markup: str) -> str:
    """The visible text of an HTML page: scripts and styles dropped, blocks on lines of their
    own, headings as Markdown headings (so chunking sees the structure)."""
    from html.parser import HTMLParser

    class _Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.hidden = 0

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag in ("script", "style", "template", "noscript"):
                self.hidden += 1
            elif tag in _HEADINGS:
                self.parts.append("\n\n" + "#" * _HEADINGS[tag] + " ")
            elif tag in _BLOCK_TAGS:
                self.parts.append("\n\n" if tag == "p" else "\n")

        def handle_endtag(self, tag: str) -> None:
            if tag in ("script", "style", "template", "noscript"):
                self.hidden = max(0, self.hidden - 1)
            elif tag in _BLOCK_TAGS:
                self.parts.append("\n\n" if tag in _HEADINGS or tag == "p" else "\n")

        def handle_data(self, data: str) -> None:
            if not self.hidden:
                self.parts.append(data)

    parser = _Text()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()
