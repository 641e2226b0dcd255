"""WebSocket chat: the same events as SSE, plus a `stop` message, on the same service layer.

Protocol (JSON text frames):
- authenticate with the `parley_access` cookie at the handshake, or send
  `{"type": "auth", "token": "<access token>"}` first (tokens never go in the URL);
- send `{"type": "message", "content": "...", "model"?: "...", "parent_id"?: "...",
  "attachments"?: ["<file id>", ...], "collection_ids"?: ["<collection id>", ...],
  "tool_ids"?: ["<server.tool>", ...]}`;
- receive `{"event": "start"|"sources"|"delta"|"tool_call"|"approval_required"|"tool_result"|
  "usage"|"done"|"error", "data": {...}, "id": n}`
  (`id`: the event's number within its reply, as SSE's `id:`);
  a message may carry `"idempotency_key"` (as the HTTP header: a resent message with the same
  key gets the reply the first one started, from `"last_event_id"` on);
- send `{"type": "stop"}` to stop the reply in progress;
- send `{"type": "resume", "reply_id": "<assistant message id>", "last_event_id": n}` after a
  reconnect to get the events of that reply after `n`, then the rest live;
- send `{"type": "reauth", "token": "<new access token>"}` before the access token expires.

The session is checked as HTTP checks it before every frame that does work, and watched while
the socket is open (app/auth/live_sessions.py): once it is revoked, its user disabled or its
token expired, the socket gets an `error` event and closes with 1008 within a second.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, ValidationError

from app.auth.cookies import ACCESS_COOKIE
from app.auth.dependencies import AuthRuntime, get_generation_user
from app.auth.errors import AccountDisabled, InvalidToken
from app.auth.live_sessions import DISABLED, REVOKED, LiveSession, SessionEnding
from app.auth.service import Principal
from app.core.db import utcnow
from app.core.errors import AppError
from app.core.logging import user_id_var
from app.files.store import FileStore
from app.generation import reply_events
from app.generation.dependencies import Services, open_services
from app.generation.idempotency import parse_key
from app.generation.parts import GenerationParts
from app.generation.reply_events import ReplyEvent
from app.generation.reply_stream import STOPPED, ReplyStream
from app.generation.requests import SendMessage
from app.generation.resume import ReplyResumer
from app.generation.schemas import Content, ModelName
from app.knowledge.schemas import CollectionIds
from app.tools.schemas import ToolIds
from app.users.models import User

router = APIRouter()

AUTH_TIMEOUT_SECONDS = 10
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009


class WSMessage(BaseModel):
    type: str = Field(max_length=16)
    content: Content | None = None
    model: ModelName | None = None
    parent_id: uuid.UUID | None = None
    attachments: list[uuid.UUID] = Field(default_factory=list)
    collection_ids: CollectionIds | None = None
    tool_ids: ToolIds | None = None
    token: str | None = Field(default=None, max_length=4096)
    reply_id: uuid.UUID | None = None
    idempotency_key: str | None = Field(default=None, max_length=1024)
    last_event_id: int = Field(default=0, ge=0, le=999_999_999)


def _allowed_origin(websocket: WebSocket, runtime: AuthRuntime) -> bool:
    """Cookies ride along on cross-site WebSocket handshakes: only our own origins may use them."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser
    settings = runtime.settings
    own = {urlsplit(settings.public_base_url)._replace(path="").geturl()}
    host = websocket.headers.get("host")
    if host:
        own |= {f"http://{host}", f"https://{host}"}
    return origin in own or origin in settings.cors_origins


async def _send_error(websocket: WebSocket, code: str, message: str, **extra: str) -> None:
    await websocket.send_json(reply_events.error(code, message, **extra).ws())


async def _receive(websocket: WebSocket) -> WSMessage | None:
    """The next frame, or None when it was not a valid one (the client was told)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text: str | None = message.get("text")
    # uvicorn's --ws-max-size (set in the serve commands) refuses bigger frames before they are
    # buffered; this holds the same limit when Parley is served without it.
    limit = websocket.app.state.runtime.settings.max_request_bytes
    if text is None:
        too_big = len(message.get("bytes") or b"") > limit
    else:
        too_big = len(text) > limit or len(text.encode()) > limit
    if too_big:
        await websocket.close(MESSAGE_TOO_BIG, "message too big")
        raise WebSocketDisconnect(MESSAGE_TOO_BIG)
    if text is None:  # a binary frame: the protocol is JSON in text frames
        await _send_error(websocket, "invalid_message", "Send JSON in a text frame.")
        return None
    try:
        return WSMessage.model_validate_json(text)
    except (ValidationError, json.JSONDecodeError):
        await _send_error(websocket, "invalid_message", "Send a JSON message.")
        return None


class _SessionOver(Exception):
    """The socket's session no longer stands (its LiveSession says why)."""


class ChatSocket:
    """One open chat socket: its user, the session it is watched under, the replies it forwards."""

    def __init__(
        self,
        websocket: WebSocket,
        chat_id: uuid.UUID,
        *,
        principal: Principal,
        token: str,
        live: LiveSession,
    ) -> None:
        self.websocket = websocket
        self.chat_id = chat_id
        self.runtime: AuthRuntime = websocket.app.state.runtime
        self.generation: GenerationParts = websocket.app.state.generation
        self.files: FileStore = websocket.app.state.files
        self.user: User = principal.user
        self.token = token
        self.live = live
        self.reply: ReplyStream | None = None
        self.forwarders: set[asyncio.Task[None]] = set()
        self.resumer = ReplyResumer(self.runtime.db, self.runtime.settings, self.generation)
        self.handlers: dict[str, Callable[[WSMessage], Awaitable[None]]] = {
            "message": self._send_message,
            "stop": self._stop,
            "resume": self._resume,
            "reauth": self._reauth,
        }

    async def serve(self) -> None:
        """Answers frames until the client leaves, or the session ends: then an `error` event
        and close code 1008, even while a reply streams or the socket is idle."""
        conversation = asyncio.create_task(self._converse())
        ended = asyncio.create_task(self.live.ended.wait())
        try:
            await asyncio.wait((conversation, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (conversation, ended):
                task.cancel()
            await asyncio.gather(conversation, ended, return_exceptions=True)
            # The reply's last reader going away does what REPLY_ON_DISCONNECT says (by
            # default, a grace for rejoining, then it stops), as for an SSE client.
            await self._stop_forwarding()
        if self.live.ending is not None:
            await self._close(self.live.ending)
            return
        failure = None if conversation.cancelled() else conversation.exception()
        if failure is not None and not isinstance(failure, WebSocketDisconnect):
            raise failure

    async def _converse(self) -> None:
        while True:
            frame = await _receive(self.websocket)
            if frame is None:
                continue
            if not self.live.still_valid():
                return
            handler = self.handlers.get(frame.type)
            if handler is None:
                await _send_error(
                    self.websocket, "invalid_message", "Expected a message, stop, resume or reauth."
                )
                continue
            try:
                await handler(frame)
            except _SessionOver:
                return

    async def _recheck(self, services: Services) -> User:
        """The user, if the socket's token and session still stand as an HTTP request would
        find them (the same query); _SessionOver otherwise."""
        try:
            principal = await services.auth.resolve_access_token(self.token)
        except AccountDisabled:
            self.live.end(DISABLED)
            raise _SessionOver() from None
        except InvalidToken:
            if self.live.still_valid():
                self.live.end(REVOKED)
            raise _SessionOver() from None
        self.user = principal.user
        return principal.user

    async def _send_message(self, frame: WSMessage) -> None:
        if not frame.content:
            await _send_error(self.websocket, "invalid_message", "A message needs `content`.")
            return
        try:
            async with open_services(self.runtime, self.generation, self.files) as services:
                user = await self._recheck(services)
                # The same gates as the HTTP routes (GenerationUser): verified email when
                # required, and the per-user generation rate limit.
                await get_generation_user(user, self.runtime)
                chat = await services.chats.get_owned_chat(user, self.chat_id)
                outcome = await services.generation.reply(
                    user,
                    SendMessage(
                        chat=chat,
                        content=frame.content,
                        model=frame.model,
                        parent_id=frame.parent_id,
                        attachments=frame.attachments,
                        collection_ids=frame.collection_ids,
                        tool_ids=frame.tool_ids,
                    ),
                    idempotency_key=parse_key(frame.idempotency_key),
                )
        except AppError as exc:
            extra = {"category": exc.category} if exc.category else {}
            await _send_error(self.websocket, exc.code, exc.message, **extra)
            return
        if isinstance(outcome, ReplyStream):
            self.reply = outcome
            self._forward(outcome.events())
        else:  # a resent message: the reply its first attempt started, from where it was
            self._forward(self.resumer.events(outcome, frame.last_event_id))

    async def _stop(self, _frame: WSMessage) -> None:
        if self.reply is not None:
            self.reply.stop(STOPPED)
            return
        try:  # a reply rejoined with `resume`, or started on another socket
            await self.generation.stops.stop(f"chat:{self.chat_id}")
        except AppError as exc:
            await _send_error(self.websocket, exc.code, exc.message)

    async def _resume(self, frame: WSMessage) -> None:
        if frame.reply_id is None:
            await _send_error(self.websocket, "invalid_message", "A resume needs `reply_id`.")
            return
        # The reply keeps going while nobody follows it (within the grace): rejoin it.
        try:
            async with open_services(self.runtime, self.generation, self.files) as services:
                user = await self._recheck(services)
                lookup = ReplyResumer(
                    self.runtime.db,
                    self.runtime.settings,
                    self.generation,
                    services.generation.uow,
                )
                saved = await lookup.chat_reply(user.id, self.chat_id, frame.reply_id)
        except AppError as exc:
            await _send_error(self.websocket, exc.code, exc.message)
            return
        await self._stop_forwarding()
        self._forward(self.resumer.events(saved, frame.last_event_id))

    async def _reauth(self, frame: WSMessage) -> None:
        """A newer access token of the same user (after a refresh), before the current one
        expires. A token that does not pass leaves the current one in place."""
        try:
            async with open_services(self.runtime, self.generation, self.files) as services:
                principal = await services.auth.resolve_access_token(frame.token or "")
            if principal.user.id != self.user.id:
                raise InvalidToken("The token belongs to another user.")
        except AppError as exc:
            await _send_error(self.websocket, exc.code, exc.message)
            return
        expires_at = self.runtime.jwt.decode_access(frame.token or "").expires_at
        self.token, self.user = frame.token or "", principal.user
        self.live.renew(principal.session.id, expires_at)
        expires_in = max(0, round((expires_at - utcnow()).total_seconds()))
        await self.websocket.send_json(
            {"event": "reauthenticated", "data": {"expires_in": expires_in}}
        )

    def _forward(self, events: AsyncIterator[ReplyEvent]) -> None:
        task = asyncio.create_task(self._send_events(events))
        self.forwarders.add(task)
        task.add_done_callback(self.forwarders.discard)

    async def _send_events(self, events: AsyncIterator[ReplyEvent]) -> None:
        async for event in events:
            await self.websocket.send_json(event.ws())

    async def _stop_forwarding(self) -> None:
        tasks = list(self.forwarders)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close(self, ending: SessionEnding) -> None:
        # The client may be gone already; then there is nobody left to tell.
        with suppress(Exception):
            await _send_error(self.websocket, ending.code, ending.message)
            await self.websocket.close(POLICY_VIOLATION, ending.code)


@router.websocket("/api/chats/{chat_id}/ws")
async def chat_socket(websocket: WebSocket, chat_id: uuid.UUID) -> None:
    """Chat over a WebSocket: send messages and stops, receive the SSE events as JSON frames."""
    runtime: AuthRuntime = websocket.app.state.runtime
    generation: GenerationParts = websocket.app.state.generation
    files: FileStore = websocket.app.state.files
    await websocket.accept()
    token = websocket.cookies.get(ACCESS_COOKIE)
    if token and not _allowed_origin(websocket, runtime):
        await websocket.close(POLICY_VIOLATION, "origin not allowed")
        return
    try:
        if not token:
            first = await asyncio.wait_for(_receive(websocket), AUTH_TIMEOUT_SECONDS)
            token = first.token if first is not None and first.type == "auth" else None
        token = token or ""
        async with open_services(runtime, generation, files) as services:
            principal = await services.auth.resolve_access_token(token)
            await services.chats.get_owned_chat(principal.user, chat_id)
    except (TimeoutError, AppError) as exc:
        code = exc.code if isinstance(exc, AppError) else "not_authenticated"
        message = exc.message if isinstance(exc, AppError) else "Authenticate first."
        await _send_error(websocket, code, message)
        await websocket.close(POLICY_VIOLATION)
        return
    except WebSocketDisconnect:
        return
    user_id_var.set(str(principal.user.id))
    live = LiveSession(
        principal.user.id, principal.session.id, runtime.jwt.decode_access(token).expires_at
    )
    socket = ChatSocket(websocket, chat_id, principal=principal, token=token, live=live)
    with generation.sessions.watching(live):
        await socket.serve()
