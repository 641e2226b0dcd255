"""Files in a local directory: `<dir>/<first two hex digits of the key>/<key>`.

One machine only (or a shared filesystem). Every file operation runs in a worker thread.
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

from app.files.storage.base import CHUNK_BYTES, BlobNotFound, BlobStream, Storage, StorageError


class LocalBlob(BlobStream):
    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self.size = size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await anyio.to_thread.run_sync(self._handle.read, CHUNK_BYTES):
            yield chunk

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._handle.close)


class LocalStorage(Storage):
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        super().__init__(self.root / ".incoming")

    def path(self, key: uuid.UUID) -> Path:
        return self.root / key.hex[:2] / key.hex

    async def put(self, key: uuid.UUID, source: Path, *, size: int, sha256: str) -> None:
        target = self.path(key)
        try:
            await anyio.to_thread.run_sync(_move_durably, source, target)
        except OSError as exc:
            raise StorageError(f"could not store {key}: {exc}") from exc

    async def open(self, key: uuid.UUID) -> BlobStream:
        try:
            handle = await anyio.to_thread.run_sync(self.path(key).open, "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(str(key)) from exc
        except OSError as exc:
            raise StorageError(f"could not open {key}: {exc}") from exc
        return LocalBlob(handle, os.fstat(handle.fileno()).st_size)

    @asynccontextmanager
    async def local_file(self, key: uuid.UUID) -> AsyncIterator[Path]:
        """The object itself: it is on local disk already, and never changes once stored."""
        path = self.path(key)
        if not await anyio.to_thread.run_sync(path.is_file):
            raise BlobNotFound(str(key))
        yield path

    async def delete(self, key: uuid.UUID) -> None:
        try:
            await anyio.to_thread.run_sync(self.path(key).unlink)
        except (FileNotFoundError, NotADirectoryError):
            pass  # nothing there
        except OSError as exc:
            raise StorageError(f"could not delete {key}: {exc}") from exc


def _move_durably(source: Path, target: Path) -> None:
    """Renames the (already synced) spool file into place and syncs the directory, so that
    after a power cut the object is either whole where it belongs or not there at all."""
    target.parent.mkdir(exist_ok=True)
    os.replace(source, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
