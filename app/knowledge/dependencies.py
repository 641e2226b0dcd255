import uuid
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.auth.dependencies import CurrentUser
from app.core.deps import UnitOfWorkDep
from app.knowledge.models import Collection
from app.knowledge.parts import KnowledgeParts
from app.knowledge.service import KnowledgeService


async def get_knowledge_parts(connection: HTTPConnection) -> KnowledgeParts:
    runtime: KnowledgeParts = connection.app.state.knowledge
    return runtime


KnowledgePartsDep = Annotated[KnowledgeParts, Depends(get_knowledge_parts)]


async def get_knowledge_service(uow: UnitOfWorkDep, runtime: KnowledgePartsDep) -> KnowledgeService:
    return KnowledgeService(uow=uow, runtime=runtime)


KnowledgeServiceDep = Annotated[KnowledgeService, Depends(get_knowledge_service)]


async def get_owned_collection(
    collection_id: uuid.UUID, user: CurrentUser, service: KnowledgeServiceDep
) -> Collection:
    """The collection in the path if it is the caller's, to change; CollectionReadOnly (403)
    if it is shared with them, CollectionNotFound (404) otherwise."""
    return await service.get_owned(user, collection_id)


OwnedCollection = Annotated[Collection, Depends(get_owned_collection)]


async def get_readable_collection(
    collection_id: uuid.UUID, user: CurrentUser, service: KnowledgeServiceDep
) -> Collection:
    """The collection in the path if the caller owns it or it is shared with one of their
    groups; CollectionNotFound (404) otherwise."""
    return await service.get_readable(user, collection_id)


ReadableCollection = Annotated[Collection, Depends(get_readable_collection)]
