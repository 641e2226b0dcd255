"""Factories for chats and messages. Messages are written through ChatService (the endpoints
that create replies belong to generation), in their own committed transaction, as a request
would."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.chats.models import Chat, Message, MessageStatus
from app.chats.service import ChatService
from app.core.uow import unit_of_work
from app.users.repository import UserRepository
from tests.support.api import SignedInUser


@asynccontextmanager
async def chat_service(app: FastAPI) -> AsyncIterator[ChatService]:
    """A ChatService on a fresh session that commits when the block ends."""
    async with unit_of_work(app.state.runtime.db) as uow:
        yield ChatService(uow)


async def load_chat(service: ChatService, user: SignedInUser, chat_id: str | uuid.UUID) -> Chat:
    owner = await service.uow.get(UserRepository).get(uuid.UUID(user.user_id))
    assert owner is not None
    return await service.get_owned_chat(owner, uuid.UUID(str(chat_id)))


async def new_chat(client: httpx.AsyncClient, user: SignedInUser, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/chats", json=fields, headers=user.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def add_turns(
    app: FastAPI,
    user: SignedInUser,
    chat_id: str,
    turns: int,
    *,
    text: str = "turn",
    parent_id: uuid.UUID | None = None,
) -> list[Message]:
    """Adds question/answer pairs under `parent_id` (default: the current leaf), in order."""
    added: list[Message] = []
    async with chat_service(app) as service:
        chat = await load_chat(service, user, chat_id)
        for index in range(turns):
            question = await service.add_user_message(
                chat, f"{text} question {index}", parent_id=parent_id
            )
            answer = await service.add_assistant_message(
                chat,
                question.id,
                content=f"{text} answer {index}",
                model="echo",
                status=MessageStatus.COMPLETE,
            )
            added += [question, answer]
            parent_id = answer.id
    return added


@pytest.fixture
async def chat(client: httpx.AsyncClient, user: SignedInUser) -> dict[str, Any]:
    return await new_chat(client, user, title="Trip to Lisbon")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]
