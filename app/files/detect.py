"""What a file is, from its bytes (magic numbers, strict UTF-8), and what it may be called.

The client's Content-Type and the file name's extension are never trusted for the type: a
PE binary named `cat.png` is a PE binary. The extension only chooses between the text formats
(Markdown, CSV, JSON, HTML, source code), which the bytes cannot tell apart.
"""

import codecs
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

from app.files.errors import MAX_STORED_NAME, FileNameTooLong, InvalidFileName
from app.files.models import FileKind

# Enough for every signature below.
SNIFF_BYTES = 64
MAX_NAME_LENGTH = MAX_STORED_NAME
# The longest name a client may send (characters, before cleaning); longer ones are refused
# with a clear error rather than shortened beyond recognition.
MAX_SENT_NAME_LENGTH = 1024
_MAX_SUFFIX_KEPT = 16


@dataclass(frozen=True)
class FileType:
    media_type: str
    kind: FileKind
    label: str  # for messages: "a PNG image"

    @property
    def is_text(self) -> bool:
        return is_text_media_type(self.media_type)


PNG = FileType("image/png", FileKind.IMAGE, "a PNG image")
JPEG = FileType("image/jpeg", FileKind.IMAGE, "a JPEG image")
WEBP = FileType("image/webp", FileKind.IMAGE, "a WebP image")
GIF = FileType("image/gif", FileKind.IMAGE, "a GIF image")
PDF = FileType("application/pdf", FileKind.DOCUMENT, "a PDF document")
DOCX = FileType(
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    FileKind.DOCUMENT,
    "a Word document",
)
PLAIN_TEXT = FileType("text/plain", FileKind.DOCUMENT, "a text file")

IMAGE_TYPES = (PNG, JPEG, WEBP, GIF)

# Text formats by extension (lower-case, with the dot); anything else that is text is plain text.
_TEXT_FORMATS: dict[str, tuple[str, str]] = {
    ".txt": ("text/plain", "a text file"),
    ".text": ("text/plain", "a text file"),
    ".log": ("text/plain", "a text file"),
    ".md": ("text/markdown", "a Markdown file"),
    ".markdown": ("text/markdown", "a Markdown file"),
    ".csv": ("text/csv", "a CSV file"),
    ".tsv": ("text/tab-separated-values", "a TSV file"),
    ".json": ("application/json", "a JSON file"),
    ".html": ("text/html", "an HTML file"),
    ".htm": ("text/html", "an HTML file"),
}
_SOURCE_CODE: dict[str, str] = {
    ".py": "text/x-python",
    ".pyi": "text/x-python",
    ".ipynb": "application/x-ipynb+json",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".jsx": "text/javascript",
    ".ts": "text/x-typescript",
    ".tsx": "text/x-typescript",
    ".c": "text/x-c",
    ".h": "text/x-c",
    ".cc": "text/x-c++",
    ".cpp": "text/x-c++",
    ".cxx": "text/x-c++",
    ".hpp": "text/x-c++",
    ".cs": "text/x-csharp",
    ".java": "text/x-java",
    ".kt": "text/x-kotlin",
    ".scala": "text/x-scala",
    ".go": "text/x-go",
    ".rs": "text/x-rust",
    ".rb": "text/x-ruby",
    ".php": "text/x-php",
    ".swift": "text/x-swift",
    ".lua": "text/x-lua",
    ".pl": "text/x-perl",
    ".r": "text/x-r",
    ".sh": "text/x-shellscript",
    ".bash": "text/x-shellscript",
    ".sql": "application/sql",
    ".css": "text/css",
    ".scss": "text/x-scss",
    ".vue": "text/x-vue",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".ini": "text/plain",
    ".cfg": "text/plain",
    ".tex": "text/x-tex",
}
for _suffix, _media_type in _SOURCE_CODE.items():
    _TEXT_FORMATS[_suffix] = (_media_type, "source code")
# Non-text/* media types that hold UTF-8 text (served with a charset).
_TEXT_APPLICATION_TYPES = frozenset(
    media_type for media_type, _ in _TEXT_FORMATS.values() if not media_type.startswith("text/")
)


def is_text_media_type(media_type: str) -> bool:
    """Whether files of this media type hold UTF-8 text (and are served with a charset)."""
    return media_type.startswith("text/") or media_type in _TEXT_APPLICATION_TYPES


def text_type(name: str) -> FileType:
    """The text format a file's extension names (plain text when it names none)."""
    media_type, label = _TEXT_FORMATS.get(PurePosixPath(name).suffix.lower(), _TEXT_FORMATS[".txt"])
    # SVG is served as an XML document, never as an image: it can carry scripts.
    return FileType(media_type, FileKind.DOCUMENT, label)


def sniff_binary(head: bytes) -> FileType | None:
    """The allowed binary type whose signature starts `head`, if any. A ZIP archive is only a
    candidate DOCX: its member list is checked once the whole file is there."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return DOCX
    return None


# Disallowed content worth naming in the error (the rest is "binary data").
_KNOWN_BINARIES: tuple[tuple[bytes, int, str], ...] = (
    (b"MZ", 0, "a Windows executable (PE)"),
    (b"\x7fELF", 0, "a Linux executable (ELF)"),
    (b"\xcf\xfa\xed\xfe", 0, "a macOS executable (Mach-O)"),
    (b"\xce\xfa\xed\xfe", 0, "a macOS executable (Mach-O)"),
    (b"\xca\xfe\xba\xbe", 0, "a Java class or macOS universal binary"),
    (b"\x00asm", 0, "a WebAssembly module"),
    (b"#!", 0, "a script"),
    (b"\x1f\x8b", 0, "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "a RAR archive"),
    (b"BZh", 0, "a bzip2 archive"),
    (b"\xfd7zXZ\x00", 0, "an XZ archive"),
    (b"SQLite format 3\x00", 0, "an SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "an old Office document"),
    (b"BM", 0, "a BMP image"),
    (b"II*\x00", 0, "a TIFF image"),
    (b"MM\x00*", 0, "a TIFF image"),
    (b"\x00\x00\x01\x00", 0, "an icon"),
    (b"ftyp", 4, "a video or HEIC image"),
    (b"ID3", 0, "an audio file"),
    (b"OggS", 0, "an audio or video file"),
)


def describe_binary(head: bytes) -> str:
    """Names disallowed content for the error message."""
    for signature, offset, label in _KNOWN_BINARIES:
        if head[offset : offset + len(signature)] == signature:
            return label
    return "binary data (not UTF-8 text)"


class TextCheck:
    """Checks, chunk by chunk, that a file is text: valid UTF-8 with no NUL characters."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.ok = True

    def feed(self, chunk: bytes, *, final: bool = False) -> bool:
        if self.ok:
            try:
                self._decoder.decode(chunk, final)
            except UnicodeDecodeError:
                self.ok = False
            else:
                self.ok = b"\x00" not in chunk
        return self.ok


_SEPARATORS = re.compile(r"[/\\]")
_SPACES = re.compile(r"\s+")
# Controls, format characters (bidi overrides that disguise `exe.png` as `gnp.exe`, zero-width
# characters), line and paragraph separators, unassigned and private-use code points.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def sanitize_name(raw: str) -> str:
    """The name a file is stored under: its last path segment, without control or format
    characters, at most 255 characters (the extension kept). A NUL or a `..` segment is a
    refusal, not something to repair: no client sends one by accident. A name longer than
    MAX_SENT_NAME_LENGTH is refused too (FileNameTooLong)."""
    if len(raw) > MAX_SENT_NAME_LENGTH:
        raise FileNameTooLong(len(raw), MAX_SENT_NAME_LENGTH)
    if "\x00" in raw or any(part.strip() == ".." for part in _SEPARATORS.split(raw)):
        raise InvalidFileName()
    base = _SEPARATORS.split(raw)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(
        " " if char.isspace() else char
        for char in base
        if unicodedata.category(char) not in _DROPPED_CATEGORIES or char.isspace()
    )
    base = _SPACES.sub(" ", base).strip(" .")
    if not base:
        base = "file"
    if len(base) > MAX_NAME_LENGTH:
        suffix = PurePosixPath(base).suffix
        if not suffix or len(suffix) > _MAX_SUFFIX_KEPT:
            suffix = ""
        base = base[: MAX_NAME_LENGTH - len(suffix)].rstrip(" .") + suffix
    return base
