import uuid
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.auth.dependencies import CurrentUser
from app.core.deps import UnitOfWorkDep
from app.knowledge.models import Collection
from app.knowledge.runtime import KnowledgeRuntime
from app.knowledge.service import KnowledgeService


async def get_knowledge_runtime(connection: HTTPConnection) -> KnowledgeRuntime:
    runtime: KnowledgeRuntime = connection.app.state.knowledge
    return runtime


KnowledgeRuntimeDep = Annotated[KnowledgeRuntime, Depends(get_knowledge_runtime)]


async def get_knowledge_service(
    uow: UnitOfWorkDep, runtime: KnowledgeRuntimeDep
) -> KnowledgeService:
    return KnowledgeService(uow=uow, runtime=runtime)


KnowledgeServiceDep = Annotated[KnowledgeService, Depends(get_knowledge_service)]


async def get_owned_collection(
    collection_id: uuid.UUID, user: CurrentUser, service: KnowledgeServiceDep
) -> Collection:
    """The collection in the path if it is the caller's; CollectionNotFound (404) otherwise."""
    return await service.get_owned(user, collection_id)


OwnedCollection = Annotated[Collection, Depends(get_owned_collection)]
