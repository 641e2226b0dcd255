import uuid
from dataclasses import dataclass

from app import audit
from app.audit import actions
from app.chats.models import Chat, Message, MessageStatus, Role
from app.chats.repository import ChatRepository, MessageRepository
from app.chats.schemas import ChatCreate
from app.chats.service import ChatService
from app.core.db import utcnow
from app.core.uow import UnitOfWork
from app.files.models import File, FileKind
from app.files.repository import AttachmentRepository
from app.knowledge.schemas import SourceRead
from app.sharing.errors import SharedFileNotFound, ShareNotFound
from app.sharing.models import ChatShare
from app.sharing.repository import ShareRepository
from app.sharing.schemas import SharedChat, SharedImage, SharedMessage, ShareRead
from app.sharing.tokens import derive_token, new_salt, token_hash
from app.users.models import User

# Long enough for any token this service makes (43 characters); longer ones are not looked up.
MAX_TOKEN_LENGTH = 100


@dataclass(frozen=True)
class Snapshot:
    share: ChatShare
    chat: Chat
    thread: list[Message]
    images: dict[uuid.UUID, list[File]]


class ShareService:
    """Public read-only links to a chat's branch, as it was when shared."""

    def __init__(
        self, uow: UnitOfWork, chats: ChatService, *, secret_key: str, base_url: str
    ) -> None:
        self.uow = uow
        self.chats = chats
        self.shares = uow.get(ShareRepository)
        self.messages = uow.get(MessageRepository)
        self.secret_key = secret_key
        self.base_url = base_url.rstrip("/")

    def _read(self, share: ChatShare, chat: Chat) -> ShareRead:
        token = derive_token(self.secret_key, share.token_salt)
        return ShareRead(
            chat_id=chat.id,
            title=chat.title,
            token=token,
            url=f"{self.base_url}/s/{token}",
            last_message_id=share.last_message_id,
            created_at=share.created_at,
            updated_at=share.updated_at,
        )

    async def share(self, user: User, chat: Chat) -> ShareRead:
        """Shares the chat's current branch up to its newest message; sharing again moves the
        snapshot forward and keeps the link."""
        newest = await self.messages.newest(chat.id)
        last_id = newest.id if newest is not None else None
        share = await self.shares.of_chat(chat.id)
        now = utcnow()
        if share is None:
            salt = new_salt()
            share = ChatShare(
                chat_id=chat.id,
                user_id=user.id,
                token_salt=salt,
                token_hash=token_hash(derive_token(self.secret_key, salt)),
                last_message_id=last_id,
                created_at=now,
                updated_at=now,
            )
            await self.shares.add(share)
            await audit.record(
                self.uow, actions.SHARE_LINK_CREATED, target=audit.Target("chat", chat.id)
            )
        else:
            if token_hash(derive_token(self.secret_key, share.token_salt)) != share.token_hash:
                # SECRET_KEY changed since: the stored hash no longer matches; a new link.
                share.token_salt = new_salt()
                share.token_hash = token_hash(derive_token(self.secret_key, share.token_salt))
            share.last_message_id = last_id
            share.updated_at = now
            await self.uow.flush()
        return self._read(share, chat)

    async def revoke(self, chat: Chat) -> None:
        """Deletes the chat's link at once (nothing to do if it has none)."""
        if await self.shares.revoke(chat.id):
            await audit.record(
                self.uow, actions.SHARE_LINK_REVOKED, target=audit.Target("chat", chat.id)
            )

    async def list_shares(self, user: User) -> list[ShareRead]:
        return [self._read(share, chat) for share, chat in await self.shares.list_for_user(user.id)]

    async def _find(self, token: str) -> tuple[ChatShare, Chat]:
        """The share of `token` and its chat; ShareNotFound for an unknown, revoked or
        malformed token, or a chat in the trash."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise ShareNotFound()
        share = await self.shares.by_hash(token_hash(token))
        if share is None:
            raise ShareNotFound()
        chat = await self.uow.get(ChatRepository).get_for_user(share.user_id, share.chat_id)
        if chat is None:  # in the trash
            raise ShareNotFound()
        return share, chat

    async def snapshot(self, token: str) -> Snapshot:
        share, chat = await self._find(token)
        thread: list[Message] = []
        if share.last_message_id is not None:
            last = await self.messages.get_in_chat(chat.id, share.last_message_id)
            if last is not None:
                thread = await self.messages.path_segment(last, 0, last.depth)
        attached = await self.uow.get(AttachmentRepository).of_messages(
            message.id for message in thread if message.role == Role.USER
        )
        images = {
            message_id: [file for file in files if file.kind == FileKind.IMAGE]
            for message_id, files in attached.items()
        }
        return Snapshot(share, chat, thread, images)

    async def shared_chat(self, token: str) -> SharedChat:
        """What anyone with the link sees: the title and the branch up to the snapshot, with
        its sources and the images shown in it."""
        found = await self.snapshot(token)
        return SharedChat(
            title=found.chat.title,
            shared_at=found.share.updated_at,
            messages=[
                SharedMessage(
                    id=message.id,
                    role=Role(message.role),
                    content=message.content,
                    status=MessageStatus(message.status),
                    model=message.model,
                    created_at=message.created_at,
                    sources=[SourceRead.model_validate(source) for source in message.sources or []],
                    images=[
                        SharedImage(
                            id=file.id,
                            name=file.name,
                            media_type=file.media_type,
                            width=file.width,
                            height=file.height,
                            url=f"/api/shared/{token}/files/{file.id}",
                        )
                        for file in found.images.get(message.id, [])
                    ],
                )
                for message in found.thread
            ],
        )

    async def shared_image(self, token: str, file_id: uuid.UUID) -> File:
        """An image attached to a message of the snapshot; SharedFileNotFound for any other
        file (the owner's other attachments stay private)."""
        found = await self.snapshot(token)
        for files in found.images.values():
            for file in files:
                if file.id == file_id:
                    return file
        raise SharedFileNotFound()

    async def continue_chat(self, viewer: User, token: str) -> Chat:
        """A new chat of the viewer's own holding a copy of the snapshot (texts, not files)."""
        found = await self.snapshot(token)
        chat = await self.chats.create_chat(
            viewer,
            ChatCreate(
                title=found.chat.title,
                mode=found.chat.mode,
                mode_params=found.chat.mode_params,
            ),
        )
        await self.chats.copy_thread(chat, found.thread)
        return chat
