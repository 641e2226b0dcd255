"""The storage interface: where a file's bytes go once an upload has been received and checked.

An upload is first written to a spool file on local disk (checked and hashed on the way);
`put` then makes that file the stored object: a rename for the local backend, an upload for
S3. Objects are named by a fresh UUID per upload and never overwritten.
"""

import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread

# Bytes read or sent at a time.
CHUNK_BYTES = 256 * 1024


class StorageError(Exception):
    """The storage failed (unreachable, refused, answered nonsense)."""


class BlobNotFound(StorageError):
    """No object under the key: its bytes are gone."""


class BlobStream(ABC):
    """An opened object: iterate for its bytes; always closed, read to the end or not."""

    size: int | None = None

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abstractmethod
    async def aclose(self) -> None: ...


class Storage(ABC):
    """Where the bytes of files live. Every method may raise StorageError."""

    name: str

    def __init__(self, spool_dir: Path) -> None:
        # Uploads are received into files here; on the local backend, in the same filesystem
        # as the objects, so that storing one is an atomic rename.
        self.spool_dir = spool_dir

    async def start(self) -> None:
        await anyio.to_thread.run_sync(lambda: self.spool_dir.mkdir(parents=True, exist_ok=True))

    async def close(self) -> None:  # noqa: B027 - a hook, empty by default
        """Releases what start() opened."""

    def spool_path(self, key: uuid.UUID) -> Path:
        return self.spool_dir / f"{key.hex}.part"

    @abstractmethod
    async def put(self, key: uuid.UUID, source: Path, *, size: int, sha256: str) -> None:
        """Stores the finished spool file `source` (`size` bytes, hex `sha256`) under `key`.
        The spool file may be consumed (moved); the caller removes it if it is still there."""

    @abstractmethod
    async def open(self, key: uuid.UUID) -> BlobStream:
        """The object's bytes, as a stream; BlobNotFound when there is none."""

    @abstractmethod
    async def delete(self, key: uuid.UUID) -> None:
        """Removes the object; no error when there is none."""

    @asynccontextmanager
    async def local_file(self, key: uuid.UUID) -> AsyncIterator[Path]:
        """The object as a file on local disk, for the content modules (which read files, in
        worker threads): a copy in the spool directory, removed when the block ends. The
        local backend yields the object itself."""
        path = self.spool_dir / f"{uuid.uuid4().hex}.read"
        try:
            blob = await self.open(key)
            try:
                handle = await anyio.to_thread.run_sync(path.open, "wb")
                try:
                    async for chunk in blob:
                        await anyio.to_thread.run_sync(handle.write, chunk)
                finally:
                    await anyio.to_thread.run_sync(handle.close)
            except OSError as exc:
                raise StorageError(f"could not copy {key} to local disk: {exc}") from exc
            finally:
                await blob.aclose()
            yield path
        finally:
            await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def sweep_spool(self, *, older_than: float) -> int:
        """Removes spool files untouched for `older_than` seconds (left by a process that
        died mid-upload); returns how many."""
        return await anyio.to_thread.run_sync(_remove_old_files, self.spool_dir, older_than)


def _remove_old_files(directory: Path, older_than: float) -> int:
    cutoff = time.time() - older_than
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            pass
    return removed


async def iter_file(
    path: Path, *, offset: int = 0, length: int | None = None
) -> AsyncIterator[bytes]:
    """A local file's bytes (or `length` of them from `offset`), read in a worker thread."""
    handle = await anyio.to_thread.run_sync(path.open, "rb")
    try:
        if offset:
            await anyio.to_thread.run_sync(handle.seek, offset)
        remaining = length
        while remaining is None or remaining > 0:
            want = CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining)
            chunk = await anyio.to_thread.run_sync(handle.read, want)
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    finally:
        await anyio.to_thread.run_sync(handle.close)
