import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime

from app.chats import export
from app.chats.errors import (
    ChatNotFound,
    InvalidCursor,
    MessageNotEditable,
    MessageNotFound,
    MessageNotRegenerable,
)
from app.chats.models import Chat, Message, MessageStatus, Role
from app.chats.modes import get_mode
from app.chats.repository import ChatKey, ChatRepository, MessageRepository, ThreadRow
from app.chats.schemas import (
    ChatCreate,
    ChatExport,
    ChatPage,
    ChatRead,
    ChatUpdate,
    ExportFormat,
    MessageBase,
    MessagePage,
    MessageRead,
)
from app.chats.search import SearchTerms
from app.core.cursor import Cursor
from app.core.db import utcnow
from app.core.uow import UnitOfWork
from app.files.attachments import attachment_reads
from app.files.repository import AttachmentRepository
from app.knowledge.errors import CollectionNotFound
from app.knowledge.repository import CollectionRepository
from app.projects.errors import ProjectNotFound
from app.projects.models import Project
from app.projects.repository import ProjectRepository
from app.tools.catalog import ToolCatalog
from app.tools.errors import UnknownTool
from app.users.models import User

# Fields of ChatUpdate that are copied as they are (mode and mode_params are validated together).
_PLAIN_FIELDS = (
    "title",
    "model",
    "system_prompt",
    "temperature",
    "top_p",
    "max_tokens",
    "pinned",
    "archived",
)
# Setting these to null is meaningful (back to the default); for the others null means "unchanged".
_NULLABLE_FIELDS = {"title", "model", "system_prompt", "temperature", "top_p", "max_tokens"}


class ChatCursor(Cursor):
    k: Literal["chats"] = "chats"
    p: bool
    t: AwareDatetime
    i: uuid.UUID

    @classmethod
    def after(cls, chat: Chat) -> "ChatCursor":
        return cls(p=chat.pinned, t=chat.last_message_at, i=chat.id)

    def key(self) -> ChatKey:
        return ChatKey(pinned=self.p, last_message_at=self.t, id=self.i)


Direction = Literal["older", "newer"]


@dataclass(frozen=True)
class ReplyContext:
    """A user message a reply will answer, and the thread from the root down to it."""

    prompt: Message
    thread: list[ThreadRow]


class MessageCursor(Cursor):
    """Where a message page ends: the boundary message and the tip of the branch shown."""

    k: Literal["messages"] = "messages"
    d: Direction
    b: uuid.UUID
    t: uuid.UUID


@dataclass(frozen=True)
class ExportFile:
    filename: str
    media_type: str
    content: str


class ChatService:
    def __init__(
        self,
        uow: UnitOfWork,
        *,
        trash_days: int = 30,
        tools: ToolCatalog | None = None,
        mode_tools: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.uow = uow
        self.tools = tools
        self.mode_tools = mode_tools or {}
        self.chats = uow.get(ChatRepository)
        self.messages = uow.get(MessageRepository)
        self.attachments = uow.get(AttachmentRepository)
        self.trash_time = timedelta(days=trash_days)

    def _trashed_since(self) -> datetime:
        """Chats trashed before this are past restoring, whether or not the purge ran yet."""
        return utcnow() - self.trash_time

    # --- chats ---------------------------------------------------------------------------------

    async def check_collections(
        self, user_id: uuid.UUID, collection_ids: Sequence[uuid.UUID]
    ) -> None:
        """CollectionNotFound unless the user may use every one: their own collections, and
        those shared with a group they are a member of."""
        usable = await self.uow.get(CollectionRepository).usable(user_id, collection_ids)
        if len(usable) != len(set(collection_ids)):
            raise CollectionNotFound()

    def check_tools(self, tool_ids: Sequence[str]) -> list[str]:
        """The ids, each an enabled tool (UnknownTool otherwise), without repeats."""
        if not tool_ids:
            return []
        if self.tools is None:
            raise UnknownTool()
        return self.tools.check(tool_ids)

    async def create_chat(self, user: User, data: ChatCreate) -> Chat:
        """Creates a chat after validating its mode's parameters (and its collections)."""
        params = get_mode(data.mode).validate_params(data.mode_params)
        if data.collection_ids:
            await self.check_collections(user.id, data.collection_ids)
        if data.tool_ids is not None:
            tool_ids = self.check_tools(data.tool_ids)
        else:  # the mode's tools (MODE_TOOLS), those of them enabled
            presets = self.mode_tools.get(data.mode, [])
            tool_ids = [t.id for t in self.tools.offered(presets)] if self.tools else []
        if data.project_id is not None:
            await self.check_project(user.id, data.project_id)
        now = utcnow()
        chat = Chat(
            user_id=user.id,
            title=data.title,
            mode=data.mode,
            mode_params=params.model_dump(mode="json"),
            model=data.model,
            system_prompt=data.system_prompt,
            temperature=data.temperature,
            top_p=data.top_p,
            max_tokens=data.max_tokens,
            pinned=data.pinned,
            collection_ids=[str(i) for i in dict.fromkeys(data.collection_ids)] or None,
            tool_ids=tool_ids or None,
            archived=False,
            project_id=data.project_id,
            created_at=now,
            updated_at=now,
            last_message_at=now,
        )
        await self.chats.add(chat)
        if data.tags:
            await self.chats.set_tags(chat, data.tags)
            await self.uow.flush()
        return chat

    async def check_project(self, user_id: uuid.UUID, project_id: uuid.UUID) -> None:
        """ProjectNotFound unless the project is the user's."""
        if await self.uow.get(ProjectRepository).get_for_user(user_id, project_id) is None:
            raise ProjectNotFound()

    async def tag_counts(self, user: User) -> list[tuple[str, int]]:
        """The user's tags, each with the number of their chats (out of the trash) carrying it."""
        return await self.chats.tag_counts(user.id)

    async def project_chat_counts(
        self, user: User, projects: Sequence[Project]
    ) -> dict[uuid.UUID, int]:
        return await self.chats.project_chat_counts(user.id, [p.id for p in projects])

    async def delete_project(self, project: Project, *, trash_chats: bool = False) -> None:
        """Deletes the project. Its chats move out of it and stay (the default), or go to the
        trash with `trash_chats`, restorable for TRASH_DAYS like any chat."""
        await self.chats.release_project(project.id, trash_at=utcnow() if trash_chats else None)
        await self.uow.get(ProjectRepository).delete(project)

    async def get_owned_chat(
        self, user: User, chat_id: uuid.UUID, *, with_trash: bool = False
    ) -> Chat:
        """The user's chat, or ChatNotFound (also for another user's chat: never 403). A chat in
        the trash is not found either, unless `with_trash` (restore, delete)."""
        if with_trash:
            chat = await self.chats.get_for_user_with_trash(
                user.id, chat_id, trashed_since=self._trashed_since()
            )
        else:
            chat = await self.chats.get_for_user(user.id, chat_id)
        if chat is None:
            raise ChatNotFound()
        return chat

    async def list_chats(
        self,
        user: User,
        *,
        limit: int,
        cursor: str | None = None,
        pinned: bool | None = None,
        archived: bool = False,
        trashed: bool = False,
        query: str | None = None,
        project_id: uuid.UUID | None = None,
        tag: str | None = None,
    ) -> ChatPage:
        """One page of the user's chats (or of their trash): pinned first, then most recently
        active."""
        chats = await self.chats.list_page(
            user.id,
            limit=limit + 1,
            after=ChatCursor.decode(cursor).key() if cursor else None,
            pinned=pinned,
            archived=archived,
            trashed_since=self._trashed_since() if trashed else None,
            search=SearchTerms.parse(query),
            project_id=project_id,
            tag=tag,
        )
        page = chats[:limit]
        more = len(chats) > limit
        return ChatPage(
            items=[ChatRead.model_validate(chat) for chat in page],
            next_cursor=ChatCursor.after(page[-1]).encode() if more else None,
        )

    async def update_chat(self, chat: Chat, data: ChatUpdate) -> Chat:
        """Applies the fields that were sent; a new mode or new parameters are validated."""
        sent = data.model_fields_set
        if "collection_ids" in sent:
            ids = list(dict.fromkeys(data.collection_ids or []))
            if ids:
                await self.check_collections(chat.user_id, ids)
            chat.collection_ids = [str(i) for i in ids] or None
        if "tool_ids" in sent:
            chat.tool_ids = self.check_tools(data.tool_ids or []) or None
        if "project_id" in sent:
            if data.project_id is not None:
                await self.check_project(chat.user_id, data.project_id)
            chat.project_id = data.project_id
        if "tags" in sent:
            await self.chats.set_tags(chat, data.tags or [])
        for name in _PLAIN_FIELDS:
            if name in sent:
                value = getattr(data, name)
                if value is not None or name in _NULLABLE_FIELDS:
                    setattr(chat, name, value)
        if ("mode" in sent and data.mode is not None) or "mode_params" in sent:
            mode = data.mode if "mode" in sent and data.mode is not None else chat.mode
            raw = data.mode_params if "mode_params" in sent else None
            params = get_mode(mode).validate_params(raw)
            chat.mode = mode
            chat.mode_params = params.model_dump(mode="json")
        await self.uow.flush()
        return chat

    async def delete_chat(self, chat: Chat, *, permanent: bool = False) -> None:
        """Moves the chat to the trash; with `permanent`, deletes it and its messages (ON DELETE
        CASCADE, same transaction), from the trash or not."""
        if permanent:
            await self.chats.delete(chat)
        elif chat.deleted_at is None:
            chat.deleted_at = utcnow()
            await self.uow.flush()

    async def restore_chat(self, chat: Chat) -> Chat:
        """Takes the chat out of the trash (a chat not in it stays as it is)."""
        chat.deleted_at = None
        await self.uow.flush()
        return chat

    # --- messages: reading ---------------------------------------------------------------------

    async def list_messages(
        self,
        chat: Chat,
        *,
        limit: int,
        cursor: str | None = None,
        leaf_id: uuid.UUID | None = None,
    ) -> MessagePage:
        """A page of one branch: by default the newest messages of the current thread."""
        if cursor is not None:
            position = MessageCursor.decode(cursor)
            wanted = {position.b, position.t}
            found_by_id = await self.messages.get_many_in_chat(chat.id, wanted)
            if set(found_by_id) != wanted:
                raise InvalidCursor()
            boundary, tip = found_by_id[position.b], found_by_id[position.t]
            if position.d == "older":
                high = boundary.depth - 1
                items = await self.messages.path_segment(boundary, max(0, high - limit + 1), high)
            else:
                # The branch may have grown since: continue to its newest message.
                tip = await self.messages.newest_descendant(tip)
                low = boundary.depth + 1
                items = await self.messages.path_segment(tip, low, low + limit - 1)
        else:
            if leaf_id is not None:
                chosen = await self.messages.get_in_chat(chat.id, leaf_id)
                if chosen is None:
                    raise MessageNotFound()
                found: Message | None = await self.messages.newest_descendant(chosen)
            else:
                found = await self.messages.newest(chat.id)
            if found is None:
                return MessagePage(items=[], leaf_id=None, older_cursor=None, newer_cursor=None)
            tip = found
            items = await self.messages.path_segment(tip, max(0, tip.depth - limit + 1), tip.depth)
        return await self._message_page(chat, items, tip)

    async def _message_page(self, chat: Chat, items: list[Message], tip: Message) -> MessagePage:
        children = await self.messages.siblings(chat.id, items)
        attached = await self.attachments.of_messages(
            message.id for message in items if message.role == Role.USER
        )
        reads = []
        for message in items:
            sibling_ids = children.get(message.parent_id) or [message.id]
            reads.append(
                MessageRead.model_validate(message).model_copy(
                    update={
                        "sibling_ids": sibling_ids,
                        "sibling_index": sibling_ids.index(message.id),
                        "attachments": attachment_reads(attached.get(message.id, [])),
                    }
                )
            )
        older = newer = None
        if items and items[0].depth > 0:
            older = MessageCursor(d="older", b=items[0].id, t=tip.id).encode()
        if items and items[-1].id != tip.id:
            newer = MessageCursor(d="newer", b=items[-1].id, t=tip.id).encode()
        return MessagePage(items=reads, leaf_id=tip.id, older_cursor=older, newer_cursor=newer)

    async def thread(self, chat: Chat, leaf_id: uuid.UUID | None = None) -> list[Message]:
        """Root to `leaf_id` (default: the newest message): the context of the next reply."""
        if leaf_id is not None and await self.messages.get_in_chat(chat.id, leaf_id) is None:
            raise MessageNotFound()
        return await self.messages.thread(chat.id, leaf_id)

    # --- messages: writing (used by generation) ------------------------------------------------

    def _new(self, chat: Chat, parent: Message | ThreadRow | None, **fields: Any) -> Message:
        """A message under `parent`, added to the session; it is written at the next flush."""
        # Creation times order the tree: a child must be newer than its parent, and the newest
        # message must be the last one added (it is the current leaf), even if clocks of
        # several workers disagree or two writes land in the same microsecond.
        now = max(utcnow(), chat.last_message_at + timedelta(microseconds=1))
        message = Message(
            # Set here rather than at the flush, so a reply can name its parent before either
            # is written: both then go to the database in one statement.
            id=uuid.uuid4(),
            chat_id=chat.id,
            parent_id=parent.id if parent else None,
            depth=parent.depth + 1 if parent else 0,
            created_at=now,
            updated_at=now,
            **fields,
        )
        self.messages.stage(message)
        chat.last_message_at = now
        return message

    async def _add(self, chat: Chat, parent: Message | None, **fields: Any) -> Message:
        message = self._new(chat, parent, **fields)
        await self.uow.flush()
        return message

    async def message_in_chat(self, chat: Chat, message_id: uuid.UUID) -> Message:
        """The chat's message (MessageNotFound, 404, when it is not one of its own)."""
        return await self._message(chat, message_id)

    async def _message(self, chat: Chat, message_id: uuid.UUID) -> Message:
        message = await self.messages.get_in_chat(chat.id, message_id)
        if message is None:
            raise MessageNotFound()
        return message

    async def add_user_message(
        self, chat: Chat, content: str, parent_id: uuid.UUID | None = None
    ) -> Message:
        """Adds a user message under `parent_id` (default: the current leaf)."""
        parent = (
            await self._message(chat, parent_id)
            if parent_id is not None
            else await self.messages.newest(chat.id)
        )
        return await self._add(chat, parent, role=Role.USER, content=content)

    async def user_message_context(
        self, chat: Chat, content: str, parent_id: uuid.UUID | None = None
    ) -> ReplyContext:
        """Like add_user_message, but unflushed and with the thread it ends."""
        history = await self.messages.thread_rows(chat.id, parent_id)
        if parent_id is not None and not history:
            raise MessageNotFound()
        return self._context(chat, history[-1] if history else None, history, content)

    def _context(
        self,
        chat: Chat,
        parent: Message | ThreadRow | None,
        history: list[ThreadRow],
        content: str,
    ) -> ReplyContext:
        message = self._new(chat, parent, role=Role.USER, content=content)
        entry = ThreadRow(message.id, message.parent_id, message.depth, Role.USER, content)
        return ReplyContext(message, [*history, entry])

    async def add_assistant_message(
        self,
        chat: Chat,
        parent_id: uuid.UUID,
        *,
        content: str = "",
        model: str | None = None,
        status: MessageStatus = MessageStatus.STREAMING,
    ) -> Message:
        """Adds a reply under `parent_id` (the user message it answers), streaming by default."""
        parent = await self._message(chat, parent_id)
        return await self.add_reply(chat, parent, content=content, model=model, status=status)

    async def add_reply(
        self,
        chat: Chat,
        parent: Message,
        *,
        content: str = "",
        model: str | None = None,
        status: MessageStatus = MessageStatus.STREAMING,
    ) -> Message:
        """Adds a reply under a user message the caller already loaded from this chat."""
        reply = self.new_reply(chat, parent, content=content, model=model, status=status)
        await self.uow.flush()
        return reply

    async def _edit_parent(self, chat: Chat, message_id: uuid.UUID) -> Message | None:
        """The parent an edit of the user message `message_id` goes under."""
        original = await self._message(chat, message_id)
        if original.role != Role.USER:
            raise MessageNotEditable()
        if original.parent_id is None:
            return None
        return await self._message(chat, original.parent_id)

    async def edit_user_message(self, chat: Chat, message_id: uuid.UUID, content: str) -> Message:
        """Adds the edited text as a sibling of the user message; the old version stays."""
        parent = await self._edit_parent(chat, message_id)
        return await self._add(chat, parent, role=Role.USER, content=content)

    async def edit_context(self, chat: Chat, message_id: uuid.UUID, content: str) -> ReplyContext:
        """Like edit_user_message, but unflushed and with the thread it ends."""
        parent = await self._edit_parent(chat, message_id)
        history = await self.messages.thread_rows(chat.id, parent.id) if parent else []
        return self._context(chat, parent, history, content)

    async def prepare_regenerate(self, chat: Chat, message_id: uuid.UUID) -> Message:
        """The user message under which a regenerated reply goes, as a sibling of the old one.

        `message_id` is either the reply to regenerate or the user message it answers.
        """
        message = await self._message(chat, message_id)
        if message.role == Role.USER:
            return message
        if message.role == Role.ASSISTANT and message.parent_id is not None:
            parent = await self._message(chat, message.parent_id)
            if parent.role == Role.USER:
                return parent
        raise MessageNotRegenerable()

    async def regenerate_context(self, chat: Chat, message_id: uuid.UUID) -> ReplyContext:
        """prepare_regenerate's user message with the thread it ends."""
        prompt = await self.prepare_regenerate(chat, message_id)
        return ReplyContext(prompt, await self.messages.thread_rows(chat.id, prompt.id))

    def new_reply(
        self,
        chat: Chat,
        parent: Message,
        *,
        content: str = "",
        model: str | None = None,
        status: MessageStatus = MessageStatus.STREAMING,
    ) -> Message:
        """add_reply without the flush: the reply is written with the session's next one."""
        return self._new(
            chat, parent, role=Role.ASSISTANT, content=content, model=model, status=status
        )

    async def copy_thread(self, chat: Chat, thread: Sequence[Message]) -> list[Message]:
        """Writes copies of `thread` (root first) into `chat` as one branch, in order: a shared
        chat continued by a reader. Texts, roles, models and sources are copied, not
        attachments (they stay their owner's); a reply cut off while streaming is marked
        interrupted."""
        copies: list[Message] = []
        parent: Message | None = None
        for message in thread:
            status = message.status
            if status == MessageStatus.STREAMING:
                status = MessageStatus.INTERRUPTED
            parent = self._new(
                chat,
                parent,
                role=message.role,
                content=message.content,
                model=message.model,
                status=status,
                sources=message.sources,
            )
            copies.append(parent)
        await self.uow.flush()
        return copies

    # --- export --------------------------------------------------------------------------------

    async def export_chat(
        self, chat: Chat, fmt: ExportFormat, *, leaf_id: uuid.UUID | None = None
    ) -> ExportFile:
        """The chat as a JSON document (every branch) or Markdown (the branch shown)."""
        tip: Message | None
        if leaf_id is not None:
            tip = await self.messages.newest_descendant(await self._message(chat, leaf_id))
        else:
            tip = await self.messages.newest(chat.id)
        thread = await self.messages.path_segment(tip, 0, tip.depth) if tip else []
        exported_at = utcnow()
        filename = export.filename(chat, exported_at, fmt)
        attached = await self.attachments.in_chat(chat.id)
        if fmt == "markdown":
            return ExportFile(
                filename,
                "text/markdown; charset=utf-8",
                export.markdown(chat, thread, exported_at, attached),
            )
        everything = await self.messages.all_in_chat(chat.id)
        document = ChatExport(
            exported_at=exported_at,
            chat=ChatRead.model_validate(chat),
            thread=[m.id for m in thread],
            messages=[
                MessageBase.model_validate(m).model_copy(
                    update={"attachments": attachment_reads(attached.get(m.id, []))}
                )
                for m in everything
            ],
        )
        return ExportFile(filename, "application/json", document.model_dump_json(indent=2))
