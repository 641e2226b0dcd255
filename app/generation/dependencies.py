"""The generation services, built per request (or per WebSocket message) from their parts."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.auth.dependencies import AuthRuntime, build_auth_service
from app.auth.service import AuthService
from app.chats.dependencies import ChatServiceDep, build_chat_service
from app.chats.service import ChatService
from app.core.deps import CoreRuntime, RuntimeDep, UnitOfWorkDep
from app.core.uow import UnitOfWork, unit_of_work
from app.files.dependencies import FileStoreDep, build_attachment_service
from app.files.store import FileStore
from app.generation.idempotency import IdempotencyKeys
from app.generation.parts import GenerationParts
from app.generation.resume import ReplyResumer
from app.generation.service import GenerationService
from app.generation.summaries import SummaryService
from app.usage.repository import UsageRepository
from app.usage.service import UsageService


async def get_generation_parts(connection: HTTPConnection) -> GenerationParts:
    runtime: GenerationParts = connection.app.state.generation
    return runtime


GenerationPartsDep = Annotated[GenerationParts, Depends(get_generation_parts)]


def build_summary_service(
    uow: UnitOfWork, runtime: CoreRuntime, generation: GenerationParts
) -> SummaryService:
    access = generation.groups.access(uow)
    return SummaryService(
        uow=uow,
        db=runtime.db,
        settings=runtime.settings,
        runtime=generation,
        usage=UsageService(
            usage=uow.get(UsageRepository), settings=runtime.settings, groups=access
        ),
        access=access,
    )


def build_generation_service(
    uow: UnitOfWork,
    runtime: CoreRuntime,
    generation: GenerationParts,
    files: FileStore,
    chats: ChatService | None = None,
) -> GenerationService:
    summaries = build_summary_service(uow, runtime, generation)
    return GenerationService(
        uow=uow,
        db=runtime.db,
        settings=runtime.settings,
        runtime=generation,
        chats=chats or build_chat_service(uow, runtime.settings, generation.tools),
        usage=summaries.usage,
        access=summaries.access,
        summaries=summaries,
        attachments=build_attachment_service(uow, files),
        keys=IdempotencyKeys(
            runtime.db,
            uow,
            hours=runtime.settings.idempotency_key_hours,
            jobs=generation.jobs,
        ),
    )


async def get_generation_service(
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    generation: GenerationPartsDep,
    files: FileStoreDep,
    chats: ChatServiceDep,
) -> GenerationService:
    return build_generation_service(uow, runtime, generation, files, chats)


GenerationServiceDep = Annotated[GenerationService, Depends(get_generation_service)]


async def get_summary_service(
    uow: UnitOfWorkDep, runtime: RuntimeDep, generation: GenerationPartsDep
) -> SummaryService:
    return build_summary_service(uow, runtime, generation)


SummaryServiceDep = Annotated[SummaryService, Depends(get_summary_service)]


async def get_reply_resumer(
    uow: UnitOfWorkDep, runtime: RuntimeDep, generation: GenerationPartsDep
) -> ReplyResumer:
    return ReplyResumer(runtime.db, runtime.settings, generation, uow)


ReplyResumerDep = Annotated[ReplyResumer, Depends(get_reply_resumer)]


@dataclass
class Services:
    auth: AuthService
    chats: ChatService
    generation: GenerationService


@asynccontextmanager
async def open_services(
    runtime: AuthRuntime, generation: GenerationParts, files: FileStore
) -> AsyncIterator[Services]:
    """The request-scoped services for code outside a request (the WebSocket), in one short
    transaction, so a long-lived socket never holds a database connection between messages."""
    async with unit_of_work(runtime.db) as uow:
        chats = build_chat_service(uow, runtime.settings, generation.tools)
        yield Services(
            auth=build_auth_service(uow, runtime),
            chats=chats,
            generation=build_generation_service(uow, runtime, generation, files, chats),
        )
