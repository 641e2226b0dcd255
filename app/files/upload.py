"""Receiving an upload: multipart/form-data parsed as it streams in, the file written to a spool
file on disk chunk by chunk, hashed and type-checked on the way.

Starlette's `request.form()` would first spool the whole body (and every part) before the
route sees any of it; here python-multipart's push parser is fed each chunk as it arrives, so a
file of the wrong type or size is refused at the first chunk that shows it, and memory holds
at most one write buffer per upload. Writing, hashing (hashlib releases the GIL) and the UTF-8
check run in a worker thread; only the multipart parsing itself runs on the event loop, a
chunk at a time.
"""

import hashlib
import os
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.files.detect import (
    MAX_SENT_NAME_LENGTH,
    SNIFF_BYTES,
    FileType,
    TextCheck,
    describe_binary,
    sanitize_name,
    sniff_binary,
    text_type,
)
from app.files.errors import (
    EmptyFile,
    FileMissing,
    FileNameTooLong,
    FileTooLarge,
    InvalidUpload,
    UnsupportedFileType,
    UploadIncomplete,
)

FILE_FIELD = "file"
# What the form around the file may add to the body: boundaries, part headers, small fields.
FORM_OVERHEAD_BYTES = 16 * 1024
# Received bytes are written to the spool file in batches of about this size.
WRITE_BATCH_BYTES = 256 * 1024
_MAX_PARTS = 8
# A part's header line at most (bytes). Parley checks this itself, rather than leaving it to
# python-multipart's own limit (4 KiB), so that a long file name gets its own clear error.
_MAX_HEADER_BYTES = 64 * 1024
_FORM_ESCAPES = (("%22", '"'), ("%0D", "\r"), ("%0A", "\n"))


@dataclass(frozen=True)
class ReceivedFile:
    name: str
    file_type: FileType
    size: int
    sha256: str


class SpoolWriter:
    """The spool file being written; its methods run in a worker thread."""

    def __init__(self, path: Path) -> None:
        # Exclusive creation: a key is never reused, so an existing file is a bug, not data.
        self._handle = path.open("xb")
        self._hash = hashlib.sha256()
        self.text = TextCheck()

    def write(self, data: bytes, *, check_text: bool) -> bool:
        """Writes and hashes `data`; False when text was expected and this is not text."""
        if check_text and not self.text.feed(data):
            return False
        self._handle.write(data)
        self._hash.update(data)
        return True

    def finish(self, *, check_text: bool) -> str | None:
        """Syncs and closes the file; its hex SHA-256, or None if a text file ended mid-way
        through a UTF-8 sequence."""
        if check_text and not self.text.feed(b"", final=True):
            self.close()
            return None
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        self._handle.close()


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    field_name: bytes = b""
    field_value: bytes = b""


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary of a Content-Type header; InvalidUpload for anything else."""
    media_type, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise InvalidUpload()
    return boundary


class UploadReceiver:
    """Parses one multipart body and writes its `file` part to `spool`."""

    def __init__(self, *, boundary: bytes, spool: Path, max_bytes: int) -> None:
        self.spool = spool
        self.max_bytes = max_bytes
        self._events: list[tuple[str, bytes]] = []
        self._parser = MultipartParser(
            boundary,
            # Checked in _handle (the body's own limit bounds what is buffered meanwhile).
            max_header_size=max_bytes + FORM_OVERHEAD_BYTES,
            callbacks={
                "on_part_begin": lambda: self._events.append(("part_begin", b"")),
                "on_header_field": lambda d, s, e: self._events.append(("field", d[s:e])),
                "on_header_value": lambda d, s, e: self._events.append(("value", d[s:e])),
                "on_header_end": lambda: self._events.append(("header_end", b"")),
                "on_headers_finished": lambda: self._events.append(("headers_done", b"")),
                "on_part_data": lambda d, s, e: self._events.append(("data", d[s:e])),
                "on_part_end": lambda: self._events.append(("part_end", b"")),
                "on_end": lambda: self._events.append(("end", b"")),
            },
        )
        self._part = _Part()
        self._parts = 0
        self._ended = False
        self._in_file = False
        self._file_done = False
        self._name = ""
        self._head = bytearray()
        self._file_type: FileType | None = None
        self._size = 0
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._writer: SpoolWriter | None = None
        self._sha256: str | None = None

    async def receive(self, body: AsyncIterable[bytes]) -> ReceivedFile:
        """Reads the whole body; the file, written and synced to the spool file."""
        received = 0
        try:
            async for chunk in body:
                received += len(chunk)
                if received > self.max_bytes + FORM_OVERHEAD_BYTES:
                    raise FileTooLarge(self.max_bytes)
                try:
                    self._parser.write(chunk)
                except FormParserError as exc:
                    raise InvalidUpload() from exc
                events, self._events = self._events, []
                for event, data in events:
                    await self._handle(event, data)
        finally:
            if self._writer is not None and self._sha256 is None:
                await anyio.to_thread.run_sync(self._writer.close)
        if not self._ended:
            raise UploadIncomplete()
        if not self._file_done or self._file_type is None or self._sha256 is None:
            raise FileMissing()
        return ReceivedFile(
            name=self._name, file_type=self._file_type, size=self._size, sha256=self._sha256
        )

    async def _handle(self, event: str, data: bytes) -> None:
        part = self._part
        if event == "data":
            if self._in_file:
                await self._file_data(data)
        elif event == "field":
            part.field_name += data
        elif event == "value":
            part.field_value += data
            if len(part.field_value) > _MAX_HEADER_BYTES:
                if part.field_name.strip().lower() == b"content-disposition":
                    raise FileNameTooLong(None, MAX_SENT_NAME_LENGTH)
                raise InvalidUpload("A part of the form has a header line over 64 KiB.")
        elif event == "header_end":
            name = part.field_name.decode("latin-1").strip().lower()
            part.headers[name] = part.field_value.decode("latin-1")
            part.field_name = part.field_value = b""
        elif event == "headers_done":
            self._start_part(part.headers)
        elif event == "part_end":
            if self._in_file:
                await self._end_file()
            self._in_file = False
        elif event == "part_begin":
            self._parts += 1
            if self._parts > _MAX_PARTS:
                raise InvalidUpload()
            self._part = _Part()
        elif event == "end":
            self._ended = True

    def _start_part(self, headers: dict[str, str]) -> None:
        disposition, options = parse_options_header(headers.get("content-disposition", ""))
        if disposition != b"form-data" or options.get(b"name") != FILE_FIELD.encode():
            return  # another field: ignored (its bytes still count against the body limit)
        if self._file_done or self._writer is not None:
            raise InvalidUpload("Send one file per request.")
        raw_name = options.get(b"filename")
        if not raw_name:
            raise FileMissing()  # a browser sends filename="" when no file was chosen
        # Browsers send the name as raw UTF-8 bytes (which the parser decoded as latin-1), with
        # '"', CR and LF percent-encoded as the HTML standard says.
        name = raw_name.decode("utf-8", errors="replace")
        for encoded, char in _FORM_ESCAPES:
            name = name.replace(encoded, char)
        self._name = sanitize_name(name)
        self._in_file = True

    async def _file_data(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.max_bytes:
            raise FileTooLarge(self.max_bytes)
        if self._file_type is None and len(self._head) < SNIFF_BYTES:
            self._head += data[: SNIFF_BYTES - len(self._head)]
        self._batch.append(data)
        self._batch_size += len(data)
        if self._batch_size >= WRITE_BATCH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._file_type is None:
            self._file_type = sniff_binary(bytes(self._head)) or text_type(self._name)
        if self._writer is None:
            self._writer = await anyio.to_thread.run_sync(SpoolWriter, self.spool)
        data = b"".join(self._batch)
        self._batch, self._batch_size = [], 0
        writer, check_text = self._writer, self._file_type.is_text
        if not await anyio.to_thread.run_sync(lambda: writer.write(data, check_text=check_text)):
            raise UnsupportedFileType(self._name, describe_binary(bytes(self._head)))

    async def _end_file(self) -> None:
        if self._size == 0:
            raise EmptyFile(self._name)
        await self._flush()
        assert self._writer is not None and self._file_type is not None
        writer, check_text = self._writer, self._file_type.is_text
        sha256 = await anyio.to_thread.run_sync(lambda: writer.finish(check_text=check_text))
        if sha256 is None:
            raise UnsupportedFileType(self._name, describe_binary(bytes(self._head)))
        self._sha256 = sha256
        self._file_done = True
