import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.auth.dependencies import CurrentUser
from app.core.deps import SessionDep
from app.files.attachments import AttachmentRepository, AttachmentService
from app.files.models import File
from app.files.repository import FileRepository, PendingBlobRepository
from app.files.service import FileService
from app.files.store import FileStore


async def get_file_store(connection: HTTPConnection) -> FileStore:
    store: FileStore = connection.app.state.files
    return store


FileStoreDep = Annotated[FileStore, Depends(get_file_store)]


def build_file_service(session: AsyncSession, store: FileStore) -> FileService:
    return FileService(
        session=session,
        files=FileRepository(session),
        blobs=PendingBlobRepository(session),
        attachments=AttachmentRepository(session),
        store=store,
    )


async def get_file_service(session: SessionDep, store: FileStoreDep) -> FileService:
    return build_file_service(session, store)


FileServiceDep = Annotated[FileService, Depends(get_file_service)]


async def get_owned_file(file_id: uuid.UUID, user: CurrentUser, service: FileServiceDep) -> File:
    """Loads the file in the path if it belongs to the caller; FileNotFound (404) otherwise."""
    return await service.get_owned_file(user, file_id)


OwnedFile = Annotated[File, Depends(get_owned_file)]


def build_attachment_service(session: AsyncSession, store: FileStore) -> AttachmentService:
    return AttachmentService(
        session=session,
        files=FileRepository(session),
        attachments=AttachmentRepository(session),
        store=store,
    )
