"""Starting replies: in chats (send, edit, regenerate, stop) and stateless (POST /api/generate).

Each request validates its input, persists the user's side and a usage reservation, commits,
and only then starts a ReplyStream (reply_stream.py), which calls the upstream and saves the
reply as it goes (reply_saver.py).

Attachments are checked first (ownership, count, duplicates, a vision model for images), then
their content is read with no database connection held (app/files/attachments.py): a document
that cannot be read is refused before anything is stored. Images of earlier messages are read
by the reply itself, after the request's transaction.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import AwareDatetime
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.chats.errors import ChatNotFound
from app.chats.models import Chat, Message, Role
from app.chats.modes import get_mode
from app.chats.repository import ThreadRow
from app.chats.schemas import ChatCreate, MessageRead
from app.chats.service import ChatService, ReplyContext
from app.core.config import Settings
from app.core.cursor import Cursor
from app.core.db import Database, utcnow
from app.files.attachments import (
    AttachmentService,
    DocumentText,
    ImageSource,
    PreparedFiles,
    attachment_reads,
    attachment_records,
)
from app.files.models import File, FileKind
from app.generation.errors import (
    ImageRequired,
    ModelNotVisionCapable,
    ReplyInProgress,
)
from app.generation.models import Generation
from app.generation.prompt import (
    DEFAULT_REPLY_RESERVE,
    DocumentInput,
    ImageInput,
    Prompt,
    PromptAttachment,
    Turn,
    build_prompt,
)
from app.generation.reply_events import ReplyEvent
from app.generation.reply_saver import ReplySaver
from app.generation.reply_stream import ImageLoader, PromptHook, ReplyStream
from app.generation.repository import GenerationRepository, ReplyRepository
from app.generation.retrieval import retrieval_hook
from app.generation.runtime import GenerationRuntime
from app.generation.schemas import GenerateRequest, GenerationPage, GenerationRead, ModelRead
from app.generation.stale_replies import stale_after
from app.generation.summaries import SummaryService
from app.generation.upstream.types import ModelConfig, SamplingParams
from app.guardrails.output import OutputGuard
from app.guardrails.pipeline import UntrustedText
from app.guardrails.recorder import EventContext
from app.usage.service import Quota, UsageService
from app.users.models import User

logger = logging.getLogger("parley.generation")


@dataclass(kw_only=True)
class GenerationService:
    session: AsyncSession
    db: Database
    settings: Settings
    runtime: GenerationRuntime
    chats: ChatService
    usage: UsageService
    replies: ReplyRepository
    generations: GenerationRepository
    summaries: SummaryService
    attachments: AttachmentService

    # --- guardrails (app/guardrails) ---------------------------------------------------------

    async def _check_input(
        self, user: User, text: str, *, mode: str, chat_id: uuid.UUID | None = None
    ) -> None:
        """The input checks, before anything is written or sent upstream. A guard model call is
        a network call: the session is committed first (nothing is written yet) so that no
        database connection is held while it runs."""
        guardrails = self.runtime.guardrails
        await guardrails.check_input(
            text,
            mode=mode,
            context=EventContext(user_id=user.id, chat_id=chat_id),
            before_network=self.session.commit if guardrails.input_guarded(mode) else None,
        )

    def _for_upstream(self, role: str, text: str, mode: str) -> str:
        """A message's text as sent upstream: the user's with personal data redacted (PII_*);
        the stored message keeps the original."""
        if role != Role.USER:
            return text
        return self.runtime.guardrails.redact_for_upstream(text, mode=mode)

    async def _checked_documents(
        self,
        attachments: dict[uuid.UUID, list[PromptAttachment]],
        new: PreparedFiles | None,
        *,
        mode: str,
        context: EventContext,
    ) -> dict[uuid.UUID, list[PromptAttachment]]:
        """Documents' text through the untrusted-text checks: personal data redacted (or the
        request refused), instructions aimed at the model flagged. Only the new message's
        documents are recorded as events; earlier ones were when they were attached."""
        documents = [
            (message_id, index, item)
            for message_id, items in attachments.items()
            for index, item in enumerate(items)
            if isinstance(item, DocumentInput)
        ]
        new_ids = {file.id for file in new.files} if new is not None else set()
        for record in (True, False):
            group = [d for d in documents if (d[2].file_id in new_ids) == record]
            if not group:
                continue
            results = await self.runtime.guardrails.check_untrusted(
                [UntrustedText(doc.text, "attachment", doc.name) for _m, _i, doc in group],
                mode=mode,
                context=context,
                record=record,
            )
            for (message_id, index, doc), result in zip(group, results, strict=True):
                attachments[message_id][index] = replace(
                    doc, text=result.text, flagged=result.flagged
                )
        return attachments

    def _chat_model(self, name: str | None, user: User, chat: Chat) -> ModelConfig:
        return self.runtime.registry.resolve(name, chat.model, user.default_model)

    # --- attachments -------------------------------------------------------------------------

    async def _attachment_files(
        self, user: User, file_ids: Sequence[uuid.UUID], config: ModelConfig
    ) -> list[File]:
        """The files to attach: the user's, at most MAX_ATTACHMENTS, each once, and images only
        for a vision model. Nothing is read yet."""
        files = await self.attachments.resolve(user, file_ids)
        _check_vision(files, config)
        return files

    async def _prepared(
        self, user: User, file_ids: Sequence[uuid.UUID], config: ModelConfig
    ) -> PreparedFiles | None:
        """The files checked and their content read, or None when there are none."""
        files = await self._attachment_files(user, file_ids, config)
        return await self.attachments.prepare(files) if files else None

    async def _prompt_attachments(
        self,
        by_message: Mapping[uuid.UUID, list[File]],
        new: PreparedFiles | None,
        *,
        mode: str,
        context: EventContext,
    ) -> dict[uuid.UUID, list[PromptAttachment]]:
        """What the prompt gets of each message's attachments (the documents' stored text,
        through the untrusted-text checks)."""
        known = new.texts if new is not None else {}
        wanted = {
            file.id
            for files in by_message.values()
            for file in files
            if file.kind == FileKind.DOCUMENT and file.id not in known
        }
        texts = {**known, **await self.attachments.texts(wanted)} if wanted else known
        attachments = {
            message_id: [a for a in (_prompt_attachment(f, texts) for f in files) if a]
            for message_id, files in by_message.items()
        }
        return await self._checked_documents(attachments, new, mode=mode, context=context)

    def _image_loader(
        self, files: Mapping[uuid.UUID, File], new: PreparedFiles | None
    ) -> ImageLoader:
        """Reads a prompt's images when the reply is about to call the upstream (the request's
        session is not used: only storage and worker threads)."""
        sources = {file_id: ImageSource.of(file) for file_id, file in files.items()}
        ready = new.image_urls if new is not None else {}
        attachments = self.attachments

        async def load(images: Sequence[ImageInput]) -> dict[uuid.UUID, str]:
            # A file attached to two messages of the thread is read once.
            wanted = dict.fromkeys(image.file_id for image in images)
            return await attachments.image_urls([sources[i] for i in wanted], ready=ready)

        return load

    # --- chat replies ------------------------------------------------------------------------

    async def send_message(
        self,
        user: User,
        chat: Chat,
        *,
        content: str,
        model: str | None = None,
        parent_id: uuid.UUID | None = None,
        attachments: Sequence[uuid.UUID] = (),
        collection_ids: Sequence[uuid.UUID] | None = None,
    ) -> ReplyStream:
        """Saves the user's message (with its attachments), then starts the assistant's reply.
        `collection_ids` (the user's collections) replace the chat's for this message."""
        await self._check_input(user, content, mode=chat.mode, chat_id=chat.id)
        config = self._chat_model(model, user, chat)
        if collection_ids is not None:
            await self.chats.check_collections(user.id, collection_ids)
        new = await self._prepared(user, attachments, config)
        return await self._reserved(
            chat,
            lambda: self.chats.user_message_context(chat, content, parent_id),
            config,
            user,
            new=new,
            collection_ids=collection_ids,
        )

    async def start_chat(
        self,
        user: User,
        data: ChatCreate,
        *,
        content: str,
        attachments: Sequence[uuid.UUID] = (),
    ) -> ReplyStream:
        """Creates a chat and sends its first message. A refused send (input, model, files,
        quota) rolls the chat back with the request; once the message is sent the chat stays,
        whatever becomes of the reply: a failed reply is saved `failed`, to retry (regenerate)."""
        await self._check_input(user, content, mode=data.mode)
        config = self.runtime.registry.resolve(data.model, None, user.default_model)
        # Files are checked and read before the chat exists: reading them ends the transaction,
        # and a refused file must not leave an empty chat behind.
        new = await self._prepared(user, attachments, config)
        chat = await self.chats.create_chat(user, data)
        return await self._reserved(
            chat,
            lambda: self.chats.user_message_context(chat, content),
            config,
            user,
            new=new,
        )

    async def edit_message(
        self,
        user: User,
        chat: Chat,
        message_id: uuid.UUID,
        *,
        content: str,
        model: str | None,
        attachments: Sequence[uuid.UUID] | None = None,
    ) -> ReplyStream:
        """Adds the edited text as a sibling of the original user message and answers it. The
        edit keeps the original's attachments unless `attachments` replaces them."""
        await self._check_input(user, content, mode=chat.mode, chat_id=chat.id)
        config = self._chat_model(model, user, chat)
        if attachments is None:
            attachments = await self.attachments.file_ids_of(chat.id, message_id)
        new = await self._prepared(user, attachments, config)
        return await self._reserved(
            chat,
            lambda: self.chats.edit_context(chat, message_id, content),
            config,
            user,
            new=new,
        )

    async def regenerate(
        self, user: User, chat: Chat, message_id: uuid.UUID, *, model: str | None
    ) -> ReplyStream:
        """Answers the same user message again (with its attachments); the new reply is a
        sibling of the old one."""
        config = self._chat_model(model, user, chat)
        return await self._reserved(
            chat, lambda: self.chats.regenerate_context(chat, message_id), config, user
        )

    async def stop(self, chat: Chat) -> bool:
        """Stops the chat's streaming reply, if any, on whichever worker streams it."""
        if await self.runtime.stops.stop(_chat_key(chat.id)):
            return True
        if not self.runtime.stops_shared:
            return False
        # Published to the other workers: report whether one of them holds a live reply.
        return await self.replies.streaming_in_chat(
            chat.id, fresh_after=utcnow() - stale_after(self.settings)
        )

    async def _reserved(
        self,
        chat: Chat,
        make_context: Callable[[], Awaitable[ReplyContext]],
        config: ModelConfig,
        user: User,
        *,
        new: PreparedFiles | None = None,
        collection_ids: Sequence[uuid.UUID] | None = None,
    ) -> ReplyStream:
        """Starts a reply to `make_context()`'s user message, one reply per chat at a time.
        `new`: the files to attach to that message (a new one), checked and read already."""
        key = _chat_key(chat.id)
        self.runtime.replies.reserve(key)
        try:
            await self.usage.lock(user)
            if new is not None:
                # The session was committed while the files were read: meanwhile the chat may
                # have got messages (the new one must be newer) or gone, and the files may have
                # been deleted. The files stay locked until the message is saved.
                last_message_at = await self.replies.chat_activity(chat.id)
                if last_message_at is None:
                    raise ChatNotFound()
                if last_message_at > chat.last_message_at:
                    chat.last_message_at = last_message_at
                await self.attachments.resolve(user, new.ids, lock=True)
            fresh_after = utcnow() - stale_after(self.settings)
            if await self.replies.streaming_in_chat(chat.id, fresh_after=fresh_after, lock=True):
                raise ReplyInProgress()
            reply = await self._start_reply(
                user,
                chat,
                await make_context(),
                config,
                new,
                collection_ids=collection_ids,
            )
        except BaseException:
            self.runtime.replies.release(key)
            raise
        return self.runtime.replies.add(reply)

    async def _start_reply(
        self,
        user: User,
        chat: Chat,
        context: ReplyContext,
        config: ModelConfig,
        new: PreparedFiles | None,
        *,
        collection_ids: Sequence[uuid.UUID] | None = None,
    ) -> ReplyStream:
        parent, thread = context.prompt, context.thread
        first_exchange = sum(m.role == Role.USER for m in thread) == 1 and chat.title is None
        # The chat's own prompt wins; in plain chats the user's preferred prompt replaces the
        # generic assistant one; other modes need their own.
        system_prompt = (
            chat.system_prompt
            or (user.system_prompt if chat.mode == "chat" else None)
            or get_mode(chat.mode).render(chat.mode_params)
        )
        # Every attachment of the chat in one statement (none, in most chats), then the thread's.
        in_chat = await self.attachments.in_chat(chat.id)
        if new is not None:
            in_chat[parent.id] = new.files  # the new message's, linked below
        attached = {row.id: in_chat[row.id] for row in thread if row.id in in_chat}
        # An image of the message being answered needs a vision model (a regenerated reply, or
        # an edit keeping its images, with another model); earlier ones are left out instead.
        _check_vision(attached.get(parent.id, []), config)
        about = EventContext(user_id=user.id, chat_id=chat.id, message_id=parent.id)
        for_prompt = (
            await self._prompt_attachments(attached, new, mode=chat.mode, context=about)
            if attached
            else {}
        )
        prompt = build_prompt(
            system_prompt=system_prompt,
            history=[
                Turn(
                    m.role,
                    self._for_upstream(m.role, m.content, chat.mode),
                    for_prompt.get(m.id, ()),
                    m.id,
                )
                for m in thread
            ],
            context_length=config.context_length,
            max_tokens=chat.max_tokens,
            vision=config.vision,
            max_image_side=self.settings.vision_max_side,
        )
        # Written together with the user message (and the usage record) in one flush.
        assistant = self.chats.new_reply(chat, parent, model=config.name)
        assistant.context_cuts = _cuts_json(prompt)
        if new is not None:
            await self.session.flush()  # the message first: its attachments refer to it
            await self.attachments.keep(new, chat_id=chat.id, message_id=parent.id)
        usage, quota = await self.usage.reserve(
            user,
            model=config.name,
            kind="chat",
            prompt_tokens=prompt.tokens,
            completion_tokens=chat.max_tokens or DEFAULT_REPLY_RESERVE,
            message_id=assistant.id,
        )
        user_message = MessageRead.model_validate(parent).model_copy(
            update={"attachments": attachment_reads(attached.get(parent.id, []))}
        )
        start = ReplyEvent(
            "start",
            {
                "chat_id": str(chat.id),
                "user_message": user_message.model_dump(mode="json"),
                "assistant_message_id": str(assistant.id),
                "model": config.name,
                "context_cuts": assistant.context_cuts or [],
            },
        )
        files = {file.id: file for files in attached.values() for file in files}
        prepare = self._retrieval(
            user, chat, parent, thread, config, prompt, assistant.id, collection_ids
        )
        guard = self.runtime.guardrails.output_guard(
            mode=chat.mode,
            context=EventContext(user_id=user.id, chat_id=chat.id, message_id=assistant.id),
            user_text=parent.content,
        )
        reply = await self._reply_stream(
            _chat_key(chat.id),
            config,
            prompt,
            SamplingParams(
                temperature=chat.temperature if chat.temperature is not None else user.temperature,
                top_p=chat.top_p,
                max_tokens=chat.max_tokens,
            ),
            saver=ReplySaver(
                self.db,
                Message,
                assistant.id,
                usage_id=usage.id,
                serialize=_message_json,
            ),
            quota=quota,
            start=start,
            load_images=self._image_loader(files, new) if prompt.images else None,
            guard=guard,
            prepare=prepare,
        )
        reply.reply_id, reply.owner_id = assistant.id, user.id  # for clients rejoining it
        if first_exchange and self.settings.auto_title:
            user_text = parent.content
            # Every first exchange gets a title: asked of the model after a complete reply, the
            # message's first words after a stopped or failed one.
            reply.on_saved.append(
                lambda result: self.summaries.title_later(
                    user.id, chat.id, user_text, config, generate=result.status == "complete"
                )
            )
        return reply

    async def _reply_stream(
        self,
        key: str,
        config: ModelConfig,
        prompt: Prompt,
        params: SamplingParams,
        *,
        saver: ReplySaver,
        quota: Quota,
        start: ReplyEvent,
        load_images: ImageLoader | None = None,
        guard: OutputGuard | None = None,
        prepare: PromptHook | None = None,
    ) -> ReplyStream:
        """Commits what the request wrote, then makes the reply (the caller starts it)."""
        # Streaming is the exception to "the request commits once": the user's message must be
        # safe before the upstream hears of it, and no connection may stay checked out while
        # tokens flow. Everything after this point saves in its own short transactions.
        await self.session.commit()
        return ReplyStream(
            key=key,
            provider=self.runtime.providers.for_model(config),
            model=config,
            prompt=prompt,
            params=params,
            saver=saver,
            headers=quota.headers(),
            start=start,
            checkpoint_seconds=self.settings.stream_checkpoint_seconds,
            metrics=self.runtime.metrics,
            load_images=load_images,
            guard=guard,
            prepare=prepare,
        )

    def _retrieval(
        self,
        user: User,
        chat: Chat,
        parent: Message,
        thread: Sequence[ThreadRow],
        config: ModelConfig,
        prompt: Prompt,
        reply_id: uuid.UUID,
        collection_ids: Sequence[uuid.UUID] | None,
    ) -> PromptHook | None:
        """The reply's retrieval from the message's collections, else the chat's (none: None)."""
        if collection_ids is None:
            collection_ids = [uuid.UUID(value) for value in chat.collection_ids or []]
        knowledge = self.runtime.knowledge
        if not collection_ids or knowledge is None:
            return None
        reserve = chat.max_tokens or DEFAULT_REPLY_RESERVE
        room = config.context_length - min(reserve, config.context_length // 2) - prompt.tokens
        return retrieval_hook(
            knowledge=knowledge,
            db=self.db,
            settings=self.settings,
            provider=self.runtime.providers.for_model(config),
            config=config,
            user_id=user.id,
            collection_ids=collection_ids,
            question=parent.content,
            history=[(m.role, m.content) for m in thread if m.id != parent.id],
            reply_id=reply_id,
            budget_tokens=room,
            guardrails=self.runtime.guardrails,
            mode=chat.mode,
            chat_id=chat.id,
        )

    # --- stateless generation ----------------------------------------------------------------

    async def generate(self, user: User, body: GenerateRequest) -> ReplyStream:
        """Runs a mode over a prompt (and its attachments) and keeps the request in the user's
        history."""
        await self._check_input(user, body.prompt, mode=body.mode)
        config = self.runtime.registry.resolve(body.model, user.default_model)
        mode = get_mode(body.mode)
        params = mode.validate_params(body.params)
        files = await self._attachment_files(user, body.attachments, config)
        if mode.vision and not any(file.kind == FileKind.IMAGE for file in files):
            raise ImageRequired()
        new = await self.attachments.prepare(files) if files else None
        attached = {_GENERATION_TURN: files} if files else {}
        for_prompt = (
            await self._prompt_attachments(
                attached, new, mode=body.mode, context=EventContext(user_id=user.id)
            )
            if attached
            else {}
        )
        prompt = build_prompt(
            system_prompt=mode.render(params),
            history=[
                Turn(
                    "user",
                    self._for_upstream(Role.USER, body.prompt, body.mode),
                    for_prompt.get(_GENERATION_TURN, ()),
                )
            ],
            context_length=config.context_length,
            max_tokens=body.max_tokens,
            vision=config.vision,
            max_image_side=self.settings.vision_max_side,
        )
        sampling = SamplingParams(
            temperature=body.temperature if body.temperature is not None else user.temperature,
            top_p=body.top_p,
            max_tokens=body.max_tokens,
        )
        await self.usage.lock(user)
        if new is not None:
            await self.attachments.keep(new, chat_id=None, message_id=None)
        generation = await self.generations.add(
            Generation(
                user_id=user.id,
                mode=body.mode,
                params=params.model_dump(mode="json"),
                prompt=body.prompt,
                settings=sampling.as_body(),
                model=config.name,
                status="streaming",
                attachments=attachment_records(files),
                context_cuts=_cuts_json(prompt),
            )
        )
        usage, quota = await self.usage.reserve(
            user,
            model=config.name,
            kind="generate",
            prompt_tokens=prompt.tokens,
            completion_tokens=body.max_tokens or DEFAULT_REPLY_RESERVE,
            generation_id=generation.id,
        )
        start = {
            "generation_id": str(generation.id),
            "model": config.name,
            "context_cuts": generation.context_cuts or [],
        }
        reply = await self._reply_stream(
            f"generation:{generation.id}",
            config,
            prompt,
            sampling,
            saver=ReplySaver(
                self.db, Generation, generation.id, usage_id=usage.id, serialize=_generation_json
            ),
            quota=quota,
            start=ReplyEvent("start", start),
            load_images=(
                self._image_loader({file.id: file for file in files}, new)
                if prompt.images
                else None
            ),
            guard=self.runtime.guardrails.output_guard(
                mode=body.mode,
                context=EventContext(user_id=user.id, generation_id=generation.id),
                user_text=body.prompt,
            ),
        )
        reply.reply_id, reply.owner_id = generation.id, user.id
        self.runtime.replies.reserve(reply.key)
        return self.runtime.replies.add(reply)

    async def list_generations(
        self, user: User, *, limit: int, cursor: str | None
    ) -> GenerationPage:
        """The user's stateless generations, newest first, a page at a time."""
        position = GenerationCursor.decode(cursor) if cursor else None
        after = (position.t, position.i) if position else None
        rows = await self.generations.page(user.id, limit=limit + 1, after=after)
        items = [GenerationRead.model_validate(row) for row in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        next_cursor = GenerationCursor(t=last.created_at, i=last.id).encode() if last else None
        return GenerationPage(items=items, next_cursor=next_cursor)

    # --- models ------------------------------------------------------------------------------

    def list_models(self) -> list[ModelRead]:
        """Every model a chat or request may name; `built_in` marks the local echo model."""
        registry = self.runtime.registry
        return [
            ModelRead(
                name=model.name,
                provider=model.provider,
                built_in=model.provider == "echo",
                context_length=model.context_length,
                default=model.name == registry.default,
                vision=model.vision,
            )
            for model in registry.all()
        ]


class GenerationCursor(Cursor):
    k: Literal["generations"] = "generations"
    t: AwareDatetime
    i: uuid.UUID


# The one turn of a stateless generation, where its attachments go.
_GENERATION_TURN = uuid.UUID(int=0)


def _check_vision(files: Sequence[File], config: ModelConfig) -> None:
    if not config.vision:
        image = next((file for file in files if file.kind == FileKind.IMAGE), None)
        if image is not None:
            raise ModelNotVisionCapable(config.name, image.name)


def _prompt_attachment(
    file: File, texts: Mapping[uuid.UUID, DocumentText]
) -> PromptAttachment | None:
    if file.kind == FileKind.IMAGE:
        return ImageInput(
            file_id=file.id,
            name=file.name,
            media_type=file.media_type,
            width=file.width or 0,
            height=file.height or 0,
        )
    text = texts.get(file.id)
    if text is None:
        # Every attached document's text is kept when it is first attached: this is a bug.
        logger.error("an attached document has no extracted text", extra={"file_id": str(file.id)})
        return None
    return DocumentInput(
        file_id=file.id,
        name=file.name,
        media_type=file.media_type,
        text=text.text,
        truncated=text.truncated,
        page_count=file.page_count,
    )


def _cuts_json(prompt: Prompt) -> list[dict[str, Any]] | None:
    return [cut.model_dump(mode="json") for cut in prompt.cuts] or None


def _chat_key(chat_id: uuid.UUID) -> str:
    # Also the key stop signals carry between workers: keep it stable.
    return f"chat:{chat_id}"


def _message_json(message: Row[Any]) -> dict[str, Any]:
    return MessageRead.model_validate(message).model_dump(mode="json")


def _generation_json(generation: Row[Any]) -> dict[str, Any]:
    return GenerationRead.model_validate(generation).model_dump(mode="json")
