"""Files attached to messages: checked, linked, shown in reads, and made ready for a prompt.

A message's attachments are rows of `message_attachment` (the link) pointing at the user's
files. What a prompt needs of them:

- documents: their text, extracted once with app/files/extract.py when the file is first
  attached and kept in `file_text`, so later replies quote it without reading the file again;
- images: re-encoded by app/files/images.py (metadata stripped, scaled to VISION_MAX_SIDE) the
  first time they are sent, kept in `file_preview`, and read from there by later replies.

Reading a file and decoding it can take seconds, so it never happens while a database
connection is held (on SQLite the one connection is every request's): prepare() commits the
session before it touches a file, and images of earlier messages are loaded by the reply itself,
after the request's transaction has ended. Images are decoded in worker threads, at most
CONTENT_WORKERS at once per process (FileStore.content_limiter); documents are read in worker
processes (FileStore.extraction), so that neither waits for the other.
"""

import base64
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import anyio.to_thread

from app.core.uow import UnitOfWork, unit_of_work
from app.files import extract, images
from app.files.errors import (
    ContentMissing,
    DuplicateAttachment,
    FileNotFound,
    StorageUnavailable,
    TooManyAttachments,
)
from app.files.models import File, FileKind
from app.files.repository import AttachmentRepository, DocumentText, FileRepository
from app.files.sandbox import ExtractJob
from app.files.schemas import AttachmentRead
from app.files.storage import BlobNotFound, StorageError
from app.files.store import FileStore
from app.users.models import User

logger = logging.getLogger("parley.files")


def attachment_reads(files: Sequence[File]) -> list[AttachmentRead]:
    return [AttachmentRead.model_validate(file) for file in files]


def attachment_records(files: Sequence[File]) -> list[dict[str, Any]] | None:
    """What a stateless generation keeps of its attachments (JSON), or None for none."""
    return [read.model_dump(mode="json") for read in attachment_reads(files)] or None


@dataclass
class PreparedFiles:
    """Files about to be attached, checked and with their content read (before anything is
    stored): every document's text, and the images re-encoded for a vision model."""

    files: list[File] = field(default_factory=list)
    texts: dict[uuid.UUID, DocumentText] = field(default_factory=dict)
    # Texts extracted now, to be kept (file_text) with the message.
    new_texts: dict[uuid.UUID, DocumentText] = field(default_factory=dict)
    image_urls: dict[uuid.UUID, str] = field(default_factory=dict)

    @property
    def ids(self) -> list[uuid.UUID]:
        return [file.id for file in self.files]


@dataclass(frozen=True)
class ImageSource:
    """What loading an image needs, copied off the ORM row (it is used after the session)."""

    file_id: uuid.UUID
    storage_key: uuid.UUID
    name: str

    @classmethod
    def of(cls, file: File) -> "ImageSource":
        return cls(file.id, file.storage_key, file.name)


class AttachmentService:
    def __init__(self, uow: UnitOfWork, *, store: FileStore) -> None:
        self.uow = uow
        self.files = uow.get(FileRepository)
        self.attachments = uow.get(AttachmentRepository)
        self.store = store

    async def resolve(
        self, user: User, file_ids: Sequence[uuid.UUID], *, lock: bool = False
    ) -> list[File]:
        """The user's files, in the order given. More than MAX_ATTACHMENTS or the same file
        twice is 422; an unknown file, or another user's, is 404 file_not_found."""
        limit = self.store.settings.max_attachments
        if len(file_ids) > limit:
            raise TooManyAttachments(len(file_ids), limit)
        seen: set[uuid.UUID] = set()
        for file_id in file_ids:
            if file_id in seen:
                raise DuplicateAttachment(str(file_id))
            seen.add(file_id)
        if not file_ids:
            return []
        found = await self.files.owned(user.id, file_ids, lock=lock)
        for file_id in file_ids:
            if file_id not in found:
                raise FileNotFound(f"File {file_id} not found.")
        return [found[file_id] for file_id in file_ids]

    async def prepare(self, files: list[File]) -> PreparedFiles:
        """Reads what a prompt needs of files about to be attached: the text of documents not
        attached before (an encrypted, damaged or text-less PDF is 422 naming the file) and
        the images re-encoded. Commits the session first: no connection is held meanwhile."""
        prepared = PreparedFiles(files=files)
        documents = [file for file in files if file.kind == FileKind.DOCUMENT]
        if documents:
            prepared.texts = await self.attachments.texts(file.id for file in documents)
        to_extract = [file for file in documents if file.id not in prepared.texts]
        to_encode = [file for file in files if file.kind == FileKind.IMAGE]
        if not (to_extract or to_encode):
            return prepared
        await self.uow.commit()
        try:
            for file in to_extract:
                prepared.texts[file.id] = prepared.new_texts[file.id] = await self.extract(file)
            for file in to_encode:
                prepared.image_urls[file.id] = await self.image_url(ImageSource.of(file))
        except ContentMissing:
            # Deleted while it was read (its row is gone too): as if it had never been there.
            missing = [f.id for f in files if not await self.files.exists(f.id)]
            if missing:
                raise FileNotFound(f"File {missing[0]} not found.") from None
            raise
        return prepared

    async def in_chat(self, chat_id: uuid.UUID) -> dict[uuid.UUID, list[File]]:
        """Every attachment of the chat, by message (the files of a reply's thread)."""
        return await self.attachments.in_chat(chat_id)

    async def file_ids_of(self, chat_id: uuid.UUID, message_id: uuid.UUID) -> list[uuid.UUID]:
        return await self.attachments.file_ids_of(chat_id, message_id)

    async def texts(self, file_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, DocumentText]:
        """The stored text of documents attached before."""
        return await self.attachments.texts(file_ids)

    async def keep(
        self, prepared: PreparedFiles, *, chat_id: uuid.UUID | None, message_id: uuid.UUID | None
    ) -> None:
        """Keeps the texts extracted now and, for a message (flushed already), its links."""
        if chat_id is not None and message_id is not None:
            await self.attachments.link(
                chat_id=chat_id, message_id=message_id, file_ids=prepared.ids
            )
        await self.attachments.add_texts(prepared.new_texts)

    async def extract(self, file: File) -> DocumentText:
        """A document's text, with DOCUMENT_MAX_PAGES and DOCUMENT_MAX_CHARS, in a worker
        process given at most EXTRACT_MAX_SECONDS (ExtractionTimeout past it)."""
        settings = self.store.settings
        job = ExtractJob(
            kind="text",
            media_type=file.media_type,
            name=file.name,
            max_pages=settings.document_max_pages,
            max_chars=settings.document_max_chars,
        )
        async with self._content(file.storage_key) as content:
            extracted: extract.ExtractedText = await self.store.extraction.run(content, job)
        return DocumentText(extracted.text, extracted.truncated)

    async def image_url(self, image: ImageSource) -> str:
        """The image re-encoded for a vision model (no metadata, longest side at most
        VISION_MAX_SIDE) as a data URL: decoded in a worker thread the first time, then read
        from its preview (file_preview), in short transactions of its own."""
        settings = self.store.settings
        max_side = settings.vision_max_side
        async with unit_of_work(self.store.db) as uow:
            prepared = await uow.get(AttachmentRepository).preview(image.file_id, max_side)
        if prepared is not None:
            return _data_url(prepared)
        async with self._content(image.storage_key) as content:
            prepared = await images.prepare_image_in_thread(
                content,
                name=image.name,
                max_side=max_side,
                max_pixels=settings.image_max_pixels,
                limiter=self.store.content_limiter,
            )
        try:
            async with unit_of_work(self.store.db) as uow:
                await uow.get(AttachmentRepository).keep_preview(image.file_id, max_side, prepared)
        except Exception:  # the file deleted meanwhile, say: the preview only saves work
            logger.info("an image's preview was not kept", exc_info=True)
        return _data_url(prepared)

    async def image_urls(
        self, sources: Sequence[ImageSource], *, ready: Mapping[uuid.UUID, str]
    ) -> dict[uuid.UUID, str]:
        """Data URLs of the images; those in `ready` (prepared already) are not read again."""
        urls: dict[uuid.UUID, str] = {}
        for source in sources:
            url = ready.get(source.file_id)
            urls[source.file_id] = url if url is not None else await self.image_url(source)
        return urls

    @asynccontextmanager
    async def _content(self, key: uuid.UUID) -> AsyncIterator[BinaryIO]:
        """The object's bytes as an open local file. Opened before any reading starts, so a
        file deleted meanwhile is either missing here (ContentMissing) or read whole. Other
        storage failures are StorageUnavailable (503)."""
        try:
            async with self.store.storage.local_file(key) as path:
                handle = await anyio.to_thread.run_sync(path.open, "rb")
                try:
                    yield handle
                finally:
                    await anyio.to_thread.run_sync(handle.close)
        except (BlobNotFound, FileNotFoundError) as exc:
            raise ContentMissing() from exc
        except StorageError as exc:
            raise StorageUnavailable() from exc


def _data_url(image: images.PreparedImage) -> str:
    return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"
