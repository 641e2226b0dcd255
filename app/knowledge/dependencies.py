import uuid
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.auth.dependencies import CurrentUser
from app.core.deps import SessionDep
from app.files.repository import FileRepository
from app.knowledge.models import Collection
from app.knowledge.repository import (
    CollectionFileRepository,
    CollectionRepository,
    DocumentRepository,
)
from app.knowledge.runtime import KnowledgeRuntime
from app.knowledge.service import KnowledgeService


async def get_knowledge_runtime(connection: HTTPConnection) -> KnowledgeRuntime:
    runtime: KnowledgeRuntime = connection.app.state.knowledge
    return runtime


KnowledgeRuntimeDep = Annotated[KnowledgeRuntime, Depends(get_knowledge_runtime)]


async def get_knowledge_service(
    session: SessionDep, runtime: KnowledgeRuntimeDep
) -> KnowledgeService:
    return KnowledgeService(
        session=session,
        runtime=runtime,
        collections=CollectionRepository(session),
        links=CollectionFileRepository(session),
        documents=DocumentRepository(session),
        files=FileRepository(session),
    )


KnowledgeServiceDep = Annotated[KnowledgeService, Depends(get_knowledge_service)]


async def get_owned_collection(
    collection_id: uuid.UUID, user: CurrentUser, service: KnowledgeServiceDep
) -> Collection:
    """The collection in the path if it is the caller's; CollectionNotFound (404) otherwise."""
    return await service.get_owned(user, collection_id)


OwnedCollection = Annotated[Collection, Depends(get_owned_collection)]
