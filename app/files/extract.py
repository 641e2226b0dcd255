"""Documents: checked at upload, and their text extracted for prompts.

pypdf reads PDFs, python-docx Word documents; the text formats are read as they are (they
were checked to be UTF-8 at upload). All of it runs in worker threads, never on the event
loop, with caps on pages and characters.
"""

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

from app.files.detect import DOCX, PDF
from app.files.errors import (
    CorruptFile,
    DocumentEncrypted,
    DocumentHasNoText,
    DocumentUnreadable,
    UnsupportedFileType,
)

logger = logging.getLogger("parley.files")

Source = Path | BinaryIO

# A Word document whose main part inflates beyond this is refused (a zip bomb would otherwise
# expand in memory when python-docx parses it).
DOCX_MAX_XML_BYTES = 64 * 1024 * 1024
_DOCX_MAIN_PART = "word/document.xml"


@dataclass(frozen=True)
class ExtractedText:
    text: str
    # Pages in the document (PDF), and whether pages or characters were left out by the caps.
    page_count: int | None
    truncated: bool


# _import_note: pypdf and python-docx (with lxml) are imported by the functions that use them, in
# the worker thread that reads a document, not at start-up: together they would add about 22 MB
# to every worker process, most of which never reads a document.

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
    """Checks that a ZIP archive is a Word document (not any other ZIP: XLSX, JAR, ...)."""
    try:
        with zipfile.ZipFile(source) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptFile(name, "Word document") from exc
    if _DOCX_MAIN_PART not in names or "[Content_Types].xml" not in names:
        raise UnsupportedFileType(name, "a ZIP archive")


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


async def extract_text_in_thread(
    source: Source,
    *,
    media_type: str,
    name: str,
    max_pages: int,
    max_chars: int,
    limiter: anyio.CapacityLimiter,
) -> ExtractedText:
    """extract_text() in a worker thread, at most `limiter`'s count at once."""
    return await anyio.to_thread.run_sync(
        lambda: extract_text(
            source, media_type=media_type, name=name, max_pages=max_pages, max_chars=max_chars
        ),
        limiter=limiter,
    )


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
    import docx  # see _import_note
    from docx.table import Table

    try:
        with zipfile.ZipFile(source) as archive:
            main = archive.getinfo(_DOCX_MAIN_PART)
            if main.file_size > DOCX_MAX_XML_BYTES:
                raise DocumentUnreadable(name)
        if isinstance(source, Path):
            document = docx.Document(str(source))
        else:
            source.seek(0)
            document = docx.Document(source)
        pieces: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells = [cell.text.strip() for cell in row.cells]
                    if any(cells):
                        pieces.append(" | ".join(cells))
            elif block.text.strip():
                pieces.append(block.text)
    except DocumentUnreadable:
        raise
    except Exception as exc:  # zipfile, lxml and python-docx errors alike
        raise DocumentUnreadable(name) from exc
    return _capped("\n".join(pieces), name, None, False, max_chars)


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
