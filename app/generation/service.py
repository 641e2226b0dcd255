"""Starting replies: in chats (send, start, edit, regenerate) and stateless (POST /api/generate),
through one method, `reply()`, whichever way the request came (HTTP, the WebSocket).

Each request is checked by the pipeline's stages (pipeline/: input checks, files read) before
anything is stored; then the user's side and a usage reservation are written, the stages compose
the prompt, the request commits, and only then a ReplyStream (reply_stream.py) calls the
upstream and saves the reply as it goes (reply_saver.py). An Idempotency-Key makes a retried
request get the reply its first attempt started (idempotency.py).
"""

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AwareDatetime
from sqlalchemy import Row

from app.auth.callers import current_key
from app.chats.errors import ChatNotFound
from app.chats.models import Chat, Message
from app.chats.modes import get_mode
from app.chats.repository import ThreadRow
from app.chats.schemas import MessageRead
from app.chats.service import ChatService, ReplyContext
from app.core.config import Settings
from app.core.cursor import Cursor
from app.core.db import Database, utcnow
from app.core.uow import UnitOfWork
from app.files.attachments import AttachmentService, attachment_reads, attachment_records
from app.generation.errors import ApprovalNotPending, ReplyInProgress
from app.generation.idempotency import IdempotencyKeys
from app.generation.models import Generation
from app.generation.parts import GenerationParts
from app.generation.pipeline.stage import ReplyPlan, RequestScope
from app.generation.pipeline.stages.client_messages import text_of
from app.generation.prompt import DEFAULT_REPLY_RESERVE, Prompt
from app.generation.reply_events import ReplyEvent
from app.generation.reply_saver import ReplySaver
from app.generation.reply_stream import ReplyStream
from app.generation.repository import GenerationRepository, ReplyRepository
from app.generation.requests import (
    Completion,
    EditMessage,
    Generate,
    Regenerate,
    ReplyRequest,
    SendMessage,
    StartChat,
    fingerprint,
)
from app.generation.resume import SavedReply
from app.generation.schemas import GenerationPage, GenerationRead, ModelRead
from app.generation.stale_replies import stale_after
from app.generation.summaries import SummaryService
from app.generation.upstream.types import ModelConfig, SamplingParams, UpstreamCall
from app.groups.access import GroupAccess
from app.projects.models import Project
from app.projects.repository import ProjectRepository
from app.usage.service import Quota, UsageService
from app.users.models import User

logger = logging.getLogger("parley.generation")


@dataclass(kw_only=True)
class GenerationService:
    uow: UnitOfWork
    db: Database
    settings: Settings
    runtime: GenerationParts
    chats: ChatService
    usage: UsageService
    summaries: SummaryService
    attachments: AttachmentService
    keys: IdempotencyKeys
    # The request's view of groups: which restricted models the user may use.
    access: GroupAccess

    def __post_init__(self) -> None:
        self.replies = self.uow.get(ReplyRepository)
        self.generations = self.uow.get(GenerationRepository)

    async def reply(
        self, user: User, request: ReplyRequest, *, idempotency_key: str | None = None
    ) -> ReplyStream | SavedReply:
        """Starts the reply `request` asks for; with an Idempotency-Key that an earlier attempt
        of the same request holds, the reply that attempt started (to rejoin) instead."""
        if idempotency_key is None:
            return await self._start(user, request)
        claim = await self.keys.claim(user.id, idempotency_key, fingerprint(request))
        if claim.reply is not None:
            return claim.reply
        try:
            reply = await self._start(user, request)
        except BaseException:
            self.keys.release_later(claim)
            raise
        try:
            await self.keys.started(claim, request.kind, reply.reply_id)
        except Exception:
            # The reply runs; a retry meanwhile is 409 until the claim is given up as abandoned.
            logger.warning("could not record the reply of an idempotency key", exc_info=True)
        return reply

    async def _start(self, user: User, request: ReplyRequest) -> ReplyStream:
        match request:
            case SendMessage():
                return await self._send(user, request)
            case StartChat():
                return await self._start_chat(user, request)
            case EditMessage():
                return await self._edit(user, request)
            case Regenerate():
                return await self._regenerate(user, request)
            case Generate():
                return await self._generate(user, request)
            case Completion():
                return await self._complete(user, request)

    def _plan(
        self, user: User, chat: Chat | None, *, project: Project | None = None, **fields: Any
    ) -> ReplyPlan:
        scope = RequestScope(
            attachments=self.attachments, titles=self.summaries, commit=self.uow.commit
        )
        if chat is not None:  # the system prompt's sources are the chat's
            fields |= {
                "chat_prompt": chat.system_prompt,
                "preferred_prompt": user.system_prompt,
                "mode_params": chat.mode_params,
            }
        if project is not None:
            fields |= {
                "project_instructions": project.instructions,
                "project_collection_ids": [
                    uuid.UUID(value) for value in project.collection_ids or []
                ],
                "project_tool_ids": [str(value) for value in project.tool_ids or []],
            }
        return ReplyPlan(user=user, chat=chat, scope=scope, **fields)

    async def _project(self, user: User, project_id: uuid.UUID | None) -> Project | None:
        """The chat's project, if it has one (its instructions, model and collections)."""
        if project_id is None:
            return None
        return await self.uow.get(ProjectRepository).get_for_user(user.id, project_id)

    async def _model(
        self, user: User, requested: str | None, chat_model: str | None, project: Project | None
    ) -> ModelConfig:
        """The request's model, else the chat's, else its project's, else the user's default,
        else the server's, if the user may use it; UnknownModel (404) otherwise, restricted or
        not there alike."""
        project_model = project.model if project is not None else None
        return self.runtime.registry.resolve(
            requested,
            chat_model,
            project_model,
            user.default_model,
            permit=await self.access.permit(user),
        )

    # --- chat replies ------------------------------------------------------------------------

    async def _send(self, user: User, request: SendMessage) -> ReplyStream:
        """Saves the user's message (with its attachments), then starts the assistant's reply.
        The message's `collection_ids` (the user's) replace the chat's for it."""
        chat = request.chat
        project = await self._project(user, chat.project_id)
        plan = self._plan(
            user,
            chat,
            project=project,
            mode=chat.mode,
            model=await self._model(user, request.model, chat.model, project),
            content=request.content,
            file_ids=request.attachments,
            collection_ids=request.collection_ids,
            tool_ids=request.tool_ids,
            max_tokens=chat.max_tokens,
        )
        if request.collection_ids is not None:
            await self.chats.check_collections(user.id, request.collection_ids)
        if request.tool_ids is not None:
            plan.tool_ids = self.chats.check_tools(request.tool_ids)
        await self.runtime.composer.check(plan)
        return await self._chat_reply(
            plan, lambda: self.chats.user_message_context(chat, request.content, request.parent_id)
        )

    async def _start_chat(self, user: User, request: StartChat) -> ReplyStream:
        """Creates a chat and sends its first message. A refused send (input, model, files,
        quota) rolls the chat back with the request; once the message is sent the chat stays,
        whatever becomes of the reply: a failed reply is saved `failed`, to retry (regenerate)."""
        data = request.data
        project = await self._project(user, data.project_id)
        plan = self._plan(
            user,
            None,
            project=project,
            mode=data.mode,
            model=await self._model(user, data.model, None, project),
            chat_prompt=data.system_prompt,
            preferred_prompt=user.system_prompt,
            mode_params=data.mode_params,
            content=request.content,
            file_ids=request.attachments,
            max_tokens=data.max_tokens,
        )
        # Files are checked and read before the chat exists: reading them ends the transaction,
        # and a refused file must not leave an empty chat behind.
        await self.runtime.composer.check(plan)
        chat = plan.chat = await self.chats.create_chat(user, data)
        return await self._chat_reply(
            plan, lambda: self.chats.user_message_context(chat, request.content)
        )

    async def _edit(self, user: User, request: EditMessage) -> ReplyStream:
        """Adds the edited text as a sibling of the original user message and answers it. The
        edit keeps the original's attachments unless the request replaces them."""
        chat, attachments = request.chat, request.attachments
        if attachments is None:
            attachments = await self.attachments.file_ids_of(chat.id, request.message_id)
        project = await self._project(user, chat.project_id)
        plan = self._plan(
            user,
            chat,
            project=project,
            mode=chat.mode,
            model=await self._model(user, request.model, chat.model, project),
            content=request.content,
            file_ids=attachments,
            max_tokens=chat.max_tokens,
        )
        await self.runtime.composer.check(plan)
        return await self._chat_reply(
            plan, lambda: self.chats.edit_context(chat, request.message_id, request.content)
        )

    async def _regenerate(self, user: User, request: Regenerate) -> ReplyStream:
        """Answers the same user message again (with its attachments); the new reply is a
        sibling of the old one."""
        chat = request.chat
        project = await self._project(user, chat.project_id)
        plan = self._plan(
            user,
            chat,
            project=project,
            mode=chat.mode,
            model=await self._model(user, request.model, chat.model, project),
            content="",
            new_content=False,
            max_tokens=chat.max_tokens,
        )
        await self.runtime.composer.check(plan)
        return await self._chat_reply(
            plan, lambda: self.chats.regenerate_context(chat, request.message_id)
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

    async def answer_tool_call(
        self, chat: Chat, message_id: uuid.UUID, call_id: str, approve: bool
    ) -> None:
        """Hands the user's answer to a tool call of the chat's reply that waits for approval,
        on whichever worker streams it (ApprovalNotPending when none waits)."""
        message = await self.chats.message_in_chat(chat, message_id)
        if message.role != "assistant" or not await self.runtime.approvals.send(
            message.id, call_id, approve
        ):
            raise ApprovalNotPending()

    async def _chat_reply(
        self,
        plan: ReplyPlan,
        make_context: Callable[[], Awaitable[ReplyContext]],
    ) -> ReplyStream:
        """Starts a reply to `make_context()`'s user message, one reply per chat at a time."""
        chat, user, new = plan.chat, plan.user, plan.new_files
        assert chat is not None
        key = _chat_key(chat.id)
        self.runtime.replies.reserve(key)
        try:
            await self.usage.lock(user, api_key=current_key())
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
            context = await make_context()
            plan.parent, plan.history = context.prompt, context.thread
            plan.content = context.prompt.content
            reply = await self._compose_chat_reply(plan)
        except BaseException:
            self.runtime.replies.release(key)
            raise
        return self.runtime.replies.add(reply)

    async def _compose_chat_reply(self, plan: ReplyPlan) -> ReplyStream:
        chat, user, parent, config = plan.chat, plan.user, plan.parent, plan.model
        assert chat is not None and parent is not None
        prompt = await self.runtime.composer.compose(plan)
        # Written together with the user message (and the usage record) in one flush.
        assistant = self.chats.new_reply(chat, parent, model=config.name)
        assistant.context_cuts = _cuts_json(prompt)
        plan.reply_id = assistant.id
        if plan.new_files is not None:
            await self.uow.flush()  # the message first: its attachments refer to it
            await self.attachments.keep(plan.new_files, chat_id=chat.id, message_id=parent.id)
        usage, quota = await self.usage.reserve(
            user,
            model=config.name,
            kind="chat",
            prompt_tokens=prompt.tokens,
            completion_tokens=plan.max_tokens or DEFAULT_REPLY_RESERVE,
            message_id=assistant.id,
            api_key=current_key(),
        )
        user_message = MessageRead.model_validate(parent).model_copy(
            update={"attachments": attachment_reads(plan.attached_files.get(parent.id, []))}
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
        sampling = plan.params or SamplingParams(
            temperature=chat.temperature if chat.temperature is not None else user.temperature,
            top_p=chat.top_p,
            max_tokens=chat.max_tokens,
        )
        saver = ReplySaver(
            self.db,
            Message,
            assistant.id,
            usage_id=usage.id,
            serialize=_message_json,
        )
        return await self._reply_stream(
            _chat_key(chat.id), plan, prompt, sampling, saver=saver, quota=quota, start=start
        )

    async def _reply_stream(
        self,
        key: str,
        plan: ReplyPlan,
        prompt: Prompt,
        params: SamplingParams,
        *,
        saver: ReplySaver,
        quota: Quota,
        start: ReplyEvent,
    ) -> ReplyStream:
        """Commits what the request wrote, then makes the reply (the caller starts it)."""
        # Streaming is the exception to "the request commits once": the user's message must be
        # safe before the upstream hears of it, and no connection may stay checked out while
        # tokens flow. Everything after this point saves in its own short transactions.
        await self.uow.commit()
        call = UpstreamCall(
            provider=self.runtime.providers.for_model(plan.model, sticky=plan.sticky_deployment()),
            model=plan.model,
            messages=prompt.messages,
            params=params,
            tools=plan.tools,
        )
        reply = ReplyStream(
            key=key,
            call=call,
            prompt_tokens=prompt.tokens,
            saver=saver,
            headers=quota.headers(),
            start=start,
            checkpoint_seconds=self.settings.stream_checkpoint_seconds,
            metrics=self.runtime.metrics,
            hooks=self.runtime.composer.reply_hooks(plan),
        )
        reply.reply_id, reply.owner_id = plan.reply_id, plan.user.id  # for clients rejoining
        return reply

    # --- stateless generation ----------------------------------------------------------------

    async def _generate(self, user: User, request: Generate) -> ReplyStream:
        """Runs a mode over a prompt (and its attachments) and keeps the request in the user's
        history."""
        body = request.body
        mode = get_mode(body.mode)
        plan = self._plan(
            user,
            None,
            mode=body.mode,
            model=await self._model(user, body.model, None, None),
            content=body.prompt,
            file_ids=body.attachments,
            max_tokens=body.max_tokens,
            needs_image=mode.vision,
        )
        # The input checks first, then the parameters and the files, as before anything else.
        plan.mode_params = params = mode.validate_params(body.params)
        await self.runtime.composer.check(plan)
        plan.history = [ThreadRow(_GENERATION_TURN, None, 0, "user", body.prompt)]
        prompt = await self.runtime.composer.compose(plan)
        config, new = plan.model, plan.new_files
        sampling = SamplingParams(
            temperature=body.temperature if body.temperature is not None else user.temperature,
            top_p=body.top_p,
            max_tokens=body.max_tokens,
        )
        await self.usage.lock(user, api_key=current_key())
        if new is not None:
            await self.attachments.keep(new, chat_id=None, message_id=None)
        files = plan.attached_files.get(_GENERATION_TURN, [])
        generation = Generation(
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
        return await self._generation_reply(plan, prompt, generation, sampling)

    async def _generation_reply(
        self, plan: ReplyPlan, prompt: Prompt, generation: Generation, sampling: SamplingParams
    ) -> ReplyStream:
        """Stores a stateless reply's generation row, holds its likely tokens against the
        quota, and starts it (`/api/generate` and `/v1` alike)."""
        generation = await self.generations.add(generation)
        plan.reply_id = generation.id
        usage, quota = await self.usage.reserve(
            plan.user,
            model=plan.model.name,
            kind="generate",
            prompt_tokens=prompt.tokens,
            completion_tokens=plan.max_tokens or DEFAULT_REPLY_RESERVE,
            generation_id=generation.id,
            api_key=current_key(),
        )
        start = {
            "generation_id": str(generation.id),
            "model": plan.model.name,
            "context_cuts": generation.context_cuts or [],
        }
        saver = ReplySaver(
            self.db, Generation, generation.id, usage_id=usage.id, serialize=_generation_json
        )
        reply = await self._reply_stream(
            f"generation:{generation.id}",
            plan,
            prompt,
            sampling,
            saver=saver,
            quota=quota,
            start=ReplyEvent("start", start),
        )
        self.runtime.replies.reserve(reply.key)
        return self.runtime.replies.add(reply)

    # --- client conversations (/v1) ----------------------------------------------------------

    async def _complete(self, user: User, request: Completion) -> ReplyStream:
        """Answers a conversation the client sent whole (the /v1 surface): the client's messages
        go upstream (the `client_messages` stage), through the same checks, quota, guardrails
        and saving as any reply. Kept in the generation history, or saved into `request.chat`."""
        chat = request.chat
        plan = self._plan(
            user,
            chat,
            mode="chat",
            model=self.runtime.registry.resolve(
                request.model, permit=await self.access.permit(user)
            ),
            content=_last_user_text(request.messages),
            collection_ids=request.collection_ids,
            max_tokens=request.max_tokens,
        )
        # The client's system messages are the system prompt: the input checks see them, and
        # neither the chat's nor the user's preferred prompt is added.
        system = [text_of(m) for m in request.messages if m.get("role") in ("system", "developer")]
        plan.chat_prompt = "\n\n".join(part for part in system if part) or None
        plan.preferred_prompt, plan.mode_params = None, None
        plan.notes["client_messages"] = list(request.messages)
        plan.params = SamplingParams(
            temperature=request.temperature,
            top_p=request.top_p,
            max_tokens=request.max_tokens,
            extra=dict(request.extra),
        )
        if request.collection_ids:
            await self.chats.check_collections(user.id, request.collection_ids)
        await self.runtime.composer.check(plan)
        if chat is not None:
            return await self._chat_reply(
                plan, lambda: self.chats.user_message_context(chat, plan.content)
            )
        plan.history = [ThreadRow(_GENERATION_TURN, None, 0, "user", plan.content)]
        prompt = await self.runtime.composer.compose(plan)
        config = plan.model
        own = SamplingParams(request.temperature, request.top_p, request.max_tokens)
        await self.usage.lock(user, api_key=current_key())
        generation = Generation(
            user_id=user.id,
            mode="chat",
            params={"api": request.api},
            prompt=plan.content,
            settings=own.as_body(),
            model=config.name,
            status="streaming",
            context_cuts=_cuts_json(prompt),
        )
        return await self._generation_reply(plan, prompt, generation, plan.params)

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

    async def list_models(self, user: User) -> list[ModelRead]:
        """Every model the user may name in a chat or request (models restricted to groups they
        are not in are left out); `built_in` marks the local echo model."""
        registry = self.runtime.registry
        permit = await self.access.permit(user)
        return [
            ModelRead(
                name=model.name,
                provider=model.provider,
                built_in=model.provider == "echo",
                context_length=model.context_length,
                default=model.name == registry.default,
                vision=model.vision,
                available=self.runtime.router.available(model.name),
            )
            for model in registry.visible(permit)
        ]


class GenerationCursor(Cursor):
    k: Literal["generations"] = "generations"
    t: AwareDatetime
    i: uuid.UUID


# The one turn of a stateless generation, where its attachments go.
_GENERATION_TURN = uuid.UUID(int=0)


def _last_user_text(messages: Any) -> str:
    """The text of the last user (or tool) message: what the reply answers."""
    for message in reversed(list(messages)):
        if message.get("role") in ("user", "tool"):
            return text_of(message)
    return ""


def _cuts_json(prompt: Prompt) -> list[dict[str, Any]] | None:
    return [cut.model_dump(mode="json") for cut in prompt.cuts] or None


def _chat_key(chat_id: uuid.UUID) -> str:
    # Also the key stop signals carry between workers: keep it stable.
    return f"chat:{chat_id}"


def _message_json(message: Row[Any]) -> dict[str, Any]:
    return MessageRead.model_validate(message).model_dump(mode="json")


def _generation_json(generation: Row[Any]) -> dict[str, Any]:
    return GenerationRead.model_validate(generation).model_dump(mode="json")
