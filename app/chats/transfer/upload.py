"""Receiving an import: the multipart body's `file` part written to a temporary file as it
arrives (python-multipart's push parser, one chunk at a time), refused once it passes
IMPORT_MAX_BYTES. Writes run in a worker thread, in batches."""

import tempfile
from collections.abc import AsyncIterable
from typing import IO

import anyio.to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from app.chats.transfer.errors import ImportTooLarge, NoImportFile
from app.files.errors import InvalidUpload, UploadIncomplete
from app.files.upload import FILE_FIELD, FORM_OVERHEAD_BYTES

_WRITE_BATCH_BYTES = 1024 * 1024
# Kept in memory up to this size, then on disk.
_SPOOL_MEMORY_BYTES = 4 * 1024 * 1024
_MAX_PARTS = 8


def spool_file() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY_BYTES)


class ImportReceiver:
    """Parses one multipart body and writes its `file` part to `spool`."""

    def __init__(self, *, boundary: bytes, spool: IO[bytes], max_bytes: int) -> None:
        self.spool = spool
        self.max_bytes = max_bytes
        self.name = ""
        self.size = 0
        self._events: list[tuple[str, bytes]] = []
        self._parser = MultipartParser(
            boundary,
            max_header_size=64 * 1024,
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
        self._headers: dict[str, str] = {}
        self._field = b""
        self._value = b""
        self._parts = 0
        self._in_file = False
        self._found = False
        self._ended = False
        self._batch: list[bytes] = []
        self._batch_size = 0

    async def receive(self, body: AsyncIterable[bytes]) -> None:
        try:
            await self._receive(body)
        except ClientDisconnect as exc:
            raise UploadIncomplete() from exc

    async def _receive(self, body: AsyncIterable[bytes]) -> None:
        received = 0
        async for chunk in body:
            received += len(chunk)
            if received > self.max_bytes + FORM_OVERHEAD_BYTES:
                raise ImportTooLarge(self.max_bytes)
            try:
                self._parser.write(chunk)
            except FormParserError as exc:
                raise InvalidUpload() from exc
            events, self._events = self._events, []
            for event, data in events:
                await self._handle(event, data)
        if not self._ended:
            raise UploadIncomplete()
        if not self._found:
            raise NoImportFile()
        await self._flush()
        await anyio.to_thread.run_sync(self.spool.seek, 0)

    async def _handle(self, event: str, data: bytes) -> None:
        if event == "data":
            if self._in_file:
                self.size += len(data)
                if self.size > self.max_bytes:
                    raise ImportTooLarge(self.max_bytes)
                self._batch.append(data)
                self._batch_size += len(data)
                if self._batch_size >= _WRITE_BATCH_BYTES:
                    await self._flush()
        elif event == "field":
            self._field += data
        elif event == "value":
            self._value += data
        elif event == "header_end":
            self._headers[self._field.decode("latin-1").strip().lower()] = self._value.decode(
                "latin-1"
            )
            self._field = self._value = b""
        elif event == "headers_done":
            self._start_part()
        elif event == "part_end":
            self._in_file = False
        elif event == "part_begin":
            self._parts += 1
            if self._parts > _MAX_PARTS:
                raise InvalidUpload()
            self._headers = {}
        elif event == "end":
            self._ended = True

    def _start_part(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition", ""))
        if disposition != b"form-data" or options.get(b"name") != FILE_FIELD.encode():
            return
        if self._found:
            raise InvalidUpload("Send one file per request.")
        raw_name = options.get(b"filename")
        if not raw_name:
            raise NoImportFile()
        self.name = raw_name.decode("utf-8", errors="replace")
        self._found = self._in_file = True

    async def _flush(self) -> None:
        if not self._batch:
            return
        data = b"".join(self._batch)
        self._batch, self._batch_size = [], 0
        await anyio.to_thread.run_sync(self.spool.write, data)
