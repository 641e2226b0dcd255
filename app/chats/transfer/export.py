"""Every chat as one streamed zip (GET /api/chats/export).

Chats are read a page at a time, each page in a short unit of work of its own, so no database
connection is held while the client reads. Each page's files (a chat's JSON, re-importable, and
its Markdown) are rendered and compressed in a worker thread into the zip, written to a sink
that the response drains after every page: memory holds one page, not the archive. The zip uses
data descriptors (sizes after the data), as any zip written without seeking does.
"""

import uuid
import zipfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import anyio.to_thread

from app.chats import export as chat_export
from app.chats.models import Chat, Message
from app.chats.schemas import ChatExport, ChatRead, MessageBase
from app.chats.tags import normalise_tag
from app.chats.transfer.errors import InvalidInclude
from app.chats.transfer.repository import TransferRepository
from app.core.db import Database, utcnow
from app.core.uow import unit_of_work
from app.files.attachments import attachment_reads
from app.files.models import File
from app.files.repository import AttachmentRepository

# Chats per page: one short transaction, one trip to the worker thread.
PAGE_CHATS = 50
# What `?include=` may name.
INCLUDABLE = ("archived", "trashed")


@dataclass(frozen=True)
class ExportSelection:
    user_id: uuid.UUID
    archived: bool = False
    trashed: bool = False
    project_id: uuid.UUID | None = None
    tag: str | None = None

    @classmethod
    def of(
        cls,
        user_id: uuid.UUID,
        include: str | None,
        *,
        project_id: uuid.UUID | None = None,
        tag: str | None = None,
    ) -> "ExportSelection":
        """From `?include=archived,trashed` (InvalidInclude, 422, for anything else), and
        `?project_id=` / `?tag=`."""
        wanted = {part.strip() for part in (include or "").split(",") if part.strip()}
        unknown = wanted - set(INCLUDABLE)
        if unknown:
            raise InvalidInclude(sorted(unknown))
        return cls(
            user_id,
            archived="archived" in wanted,
            trashed="trashed" in wanted,
            project_id=project_id,
            tag=normalise_tag(tag) if tag else None,
        )


class _Sink:
    """A write-only, unseekable file: zipfile writes to it, the stream takes what it holds."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def thread_of(messages: Sequence[Message]) -> list[Message]:
    """The branch shown: from the root down to the newest message (`messages` oldest first)."""
    if not messages:
        return []
    by_id = {message.id: message for message in messages}
    thread: list[Message] = []
    current: Message | None = messages[-1]
    while current is not None and len(thread) <= len(messages):
        thread.append(current)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return thread[::-1]


def chat_document(
    chat: Chat,
    messages: Sequence[Message],
    attached: dict[uuid.UUID, list[File]],
    exported_at: datetime,
) -> tuple[ChatExport, list[Message]]:
    """The chat as GET /api/chats/{chat_id}/export?format=json has it, and the thread shown."""
    thread = thread_of(messages)
    document = ChatExport(
        exported_at=exported_at,
        chat=ChatRead.model_validate(chat),
        thread=[message.id for message in thread],
        messages=[
            MessageBase.model_validate(message).model_copy(
                update={"attachments": attachment_reads(attached.get(message.id, []))}
            )
            for message in messages
        ],
    )
    return document, thread


class BulkExport:
    def __init__(self, db: Database, selection: ExportSelection) -> None:
        self.db = db
        self.selection = selection
        self.exported_at = utcnow()
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", compression=zipfile.ZIP_DEFLATED)
        self.folder = f"parley-export-{self.exported_at:%Y%m%d}"

    @property
    def filename(self) -> str:
        return f"{self.folder}.zip"

    async def stream(self) -> AsyncIterator[bytes]:
        after: uuid.UUID | None = None
        while True:
            async with unit_of_work(self.db) as uow:
                chats = await uow.get(TransferRepository).chat_page(
                    self.selection.user_id,
                    after=after,
                    limit=PAGE_CHATS,
                    archived=self.selection.archived,
                    trashed=self.selection.trashed,
                    project_id=self.selection.project_id,
                    tag=self.selection.tag,
                )
                messages = await uow.get(TransferRepository).messages_of(
                    [chat.id for chat in chats]
                )
                attached = await uow.get(AttachmentRepository).of_messages(
                    message.id for message in messages
                )
            if not chats:
                break
            data = await anyio.to_thread.run_sync(self._write_page, chats, messages, attached)
            if data:
                yield data
            after = chats[-1].id
        yield await anyio.to_thread.run_sync(self._finish)

    def _write_page(
        self,
        chats: list[Chat],
        messages: list[Message],
        attached: dict[uuid.UUID, list[File]],
    ) -> bytes:
        by_chat: dict[uuid.UUID, list[Message]] = {}
        for message in messages:
            by_chat.setdefault(message.chat_id, []).append(message)
        for chat in chats:
            own = by_chat.get(chat.id, [])
            document, thread = chat_document(chat, own, attached, self.exported_at)
            name = f"{self.folder}/{chat_export.slug(chat.title)}-{chat.id}"
            self._zip.writestr(name + ".json", document.model_dump_json(indent=2))
            self._zip.writestr(
                name + ".md", chat_export.markdown(chat, thread, self.exported_at, attached)
            )
        return self._sink.take()

    def _finish(self) -> bytes:
        self._zip.close()
        return self._sink.take()
