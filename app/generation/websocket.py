"""WebSocket chat: the same events as SSE, plus a `stop` message, on the same service layer.

Protocol (JSON text frames):
- authenticate with the `parley_access` cookie at the handshake, or send
  `{"type": "auth", "token": "<access token>"}` first (tokens never go in the URL);
- send `{"type": "message", "content": "...", "model"?: "...", "parent_id"?: "...",
  "attachments"?: ["<file id>", ...], "collection_ids"?: ["<collection id>", ...]}`;
- receive `{"event": "start"|"sources"|"delta"|"usage"|"done"|"error", "data": {...}, "id": n}`
  (`id`: the event's number within its reply, as SSE's `id:`);
  a message may carry `"idempotency_key"` (as the HTTP header: a retry with the same key and
  message gets the reply the first attempt started, from `"last_event_id"` on);
- send `{"type": "stop"}` to stop the reply in progress;
- send `{"type": "resume", "reply_id": "<assistant message id>", "last_event_id": n}` after a
  reconnect to get the events of that reply after `n`, then the rest live.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, ValidationError

from app.auth.cookies import ACCESS_COOKIE
from app.auth.dependencies import get_generation_user
from app.core.deps import Runtime
from app.core.errors import AppError
from app.core.logging import user_id_var
from app.files.store import FileStore
from app.generation import reply_events
from app.generation.dependencies import open_services
from app.generation.idempotency import parse_key
from app.generation.reply_events import ReplyEvent
from app.generation.reply_stream import STOPPED, ReplyStream
from app.generation.requests import SendMessage
from app.generation.resume import ReplyResumer
from app.generation.runtime import GenerationRuntime
from app.generation.schemas import Content, ModelName
from app.knowledge.schemas import CollectionIds

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
    token: str | None = Field(default=None, max_length=4096)
    reply_id: uuid.UUID | None = None
    idempotency_key: str | None = Field(default=None, max_length=1024)
    last_event_id: int = Field(default=0, ge=0, le=999_999_999)


def _allowed_origin(websocket: WebSocket, runtime: Runtime) -> bool:
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


async def _receive(websocket: WebSocket) -> WSMessage | None:
    text = await websocket.receive_text()
    # uvicorn's --ws-max-size (set in the serve commands) refuses bigger frames before they are
    # buffered; this holds the same limit when Parley is served without it.
    limit = websocket.app.state.runtime.settings.max_request_bytes
    if len(text) > limit or len(text.encode()) > limit:
        await websocket.close(MESSAGE_TOO_BIG, "message too big")
        raise WebSocketDisconnect(MESSAGE_TOO_BIG)
    try:
        return WSMessage.model_validate_json(text)
    except (ValidationError, json.JSONDecodeError):
        await websocket.send_json(
            reply_events.error("invalid_message", "Send a JSON message.").ws()
        )
        return None


@router.websocket("/api/chats/{chat_id}/ws")
async def chat_socket(websocket: WebSocket, chat_id: uuid.UUID) -> None:
    """Chat over a WebSocket: send messages and stops, receive the SSE events as JSON frames."""
    runtime: Runtime = websocket.app.state.runtime
    generation: GenerationRuntime = websocket.app.state.generation
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
        async with open_services(runtime, generation, files) as services:
            principal = await services.auth.resolve_access_token(token or "")
            user = principal.user
            chat = await services.chats.get_owned_chat(user, chat_id)
    except (TimeoutError, AppError) as exc:
        code = exc.code if isinstance(exc, AppError) else "not_authenticated"
        message = exc.message if isinstance(exc, AppError) else "Authenticate first."
        await websocket.send_json(reply_events.error(code, message).ws())
        await websocket.close(POLICY_VIOLATION)
        return
    except WebSocketDisconnect:
        return
    user_id_var.set(str(user.id))

    reply: ReplyStream | None = None
    forwarder: asyncio.Task[None] | None = None
    resumer = ReplyResumer(runtime.db, runtime.settings, generation)

    async def forward(events: AsyncIterator[ReplyEvent]) -> None:
        async for event in events:
            await websocket.send_json(event.ws())

    try:
        while True:
            frame = await _receive(websocket)
            if frame is None:
                continue
            if frame.type == "stop":
                if reply is not None:
                    reply.stop(STOPPED)
                else:  # a reply rejoined with `resume`, or started on another socket
                    try:
                        await generation.stops.stop(f"chat:{chat_id}")
                    except AppError as exc:
                        await websocket.send_json(reply_events.error(exc.code, exc.message).ws())
                continue
            if frame.type == "resume" and frame.reply_id is not None:
                # The reply keeps going while nobody follows it (within the grace): rejoin it.
                try:
                    async with open_services(runtime, generation, files) as services:
                        lookup = ReplyResumer(
                            runtime.db, runtime.settings, generation, services.generation.uow
                        )
                        saved = await lookup.chat_reply(user.id, chat_id, frame.reply_id)
                except AppError as exc:
                    await websocket.send_json(reply_events.error(exc.code, exc.message).ws())
                    continue
                if forwarder is not None:
                    forwarder.cancel()
                forwarder = asyncio.create_task(forward(resumer.events(saved, frame.last_event_id)))
                continue
            if frame.type != "message" or not frame.content:
                await websocket.send_json(
                    reply_events.error("invalid_message", "Expected a message or stop.").ws()
                )
                continue
            try:
                # The same gates as the HTTP routes (GenerationUser): verified email when
                # required, and the per-user generation rate limit.
                await get_generation_user(user, runtime)
                async with open_services(runtime, generation, files) as services:
                    chat = await services.chats.get_owned_chat(user, chat_id)
                    outcome = await services.generation.reply(
                        user,
                        SendMessage(
                            chat=chat,
                            content=frame.content,
                            model=frame.model,
                            parent_id=frame.parent_id,
                            attachments=frame.attachments,
                            collection_ids=frame.collection_ids,
                        ),
                        idempotency_key=parse_key(frame.idempotency_key),
                    )
            except AppError as exc:
                extra = {"category": exc.category} if exc.category else {}
                await websocket.send_json(reply_events.error(exc.code, exc.message, **extra).ws())
                continue
            if forwarder is not None:
                forwarder.cancel()
            if isinstance(outcome, ReplyStream):
                reply = outcome
                forwarder = asyncio.create_task(forward(reply.events()))
            else:  # a retried message: the reply its first attempt started, from where it was
                forwarder = asyncio.create_task(
                    forward(resumer.events(outcome, frame.last_event_id))
                )
    except WebSocketDisconnect:
        pass
    finally:
        # The reply's last reader going away does what REPLY_ON_DISCONNECT says (by default, a
        # grace for rejoining, then it stops), as for an SSE client.
        if forwarder is not None:
            forwarder.cancel()
