import uuid
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.auth.dependencies import CurrentUser
from app.core.deps import UnitOfWorkDep
from app.core.uow import UnitOfWork
from app.files.attachments import AttachmentService
from app.files.models import File
from app.files.service import FileService
from app.files.store import FileStore


async def get_file_store(connection: HTTPConnection) -> FileStore:
    store: FileStore = connection.app.state.files
    return store


FileStoreDep = Annotated[FileStore, Depends(get_file_store)]


def build_file_service(uow: UnitOfWork, store: FileStore) -> FileService:
    return FileService(uow, store=store)


async def get_file_service(uow: UnitOfWorkDep, store: FileStoreDep) -> FileService:
    return build_file_service(uow, store)


FileServiceDep = Annotated[FileService, Depends(get_file_service)]


async def get_owned_file(file_id: uuid.UUID, user: CurrentUser, service: FileServiceDep) -> File:
    """Loads the file in the path if it belongs to the caller; FileNotFound (404) otherwise."""
    return await service.get_owned_file(user, file_id)


OwnedFile = Annotated[File, Depends(get_owned_file)]


def build_attachment_service(uow: UnitOfWork, store: FileStore) -> AttachmentService:
    return AttachmentService(uow, store=store)
