import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.auth.dependencies import CurrentUser
from app.auth.errors import CsrfFailed
from app.core.errors import Unauthorized, error_responses
from app.core.text import NoNul
from app.files.errors import FileNotFound
from app.groups.errors import UnknownGroups
from app.knowledge.dependencies import (
    KnowledgeServiceDep,
    OwnedCollection,
    ReadableCollection,
)
from app.knowledge.errors import (
    CollectionFileLimit,
    CollectionFileNotFound,
    CollectionNotFound,
    CollectionReadOnly,
    EmptyQuery,
    NotADocument,
)
from app.knowledge.schemas import (
    CollectionCreate,
    CollectionFileAdd,
    CollectionFileRead,
    CollectionRead,
    CollectionUpdate,
    SearchResult,
)

router = APIRouter(prefix="/api/collections", tags=["knowledge"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a collection",
    responses=error_responses(Unauthorized, CsrfFailed),
)
async def create_collection(
    body: CollectionCreate, user: CurrentUser, service: KnowledgeServiceDep
) -> CollectionRead:
    """An empty collection of documents; add files with POST .../files."""
    return await service.create(user, body)


@router.get("", summary="List my collections", responses=error_responses(Unauthorized))
async def list_collections(user: CurrentUser, service: KnowledgeServiceDep) -> list[CollectionRead]:
    """Yours newest first, then those shared with your groups (`owned`: false), with file
    counts and the retrieval in use."""
    return await service.list_collections(user)


@router.get(
    "/{collection_id}",
    summary="Get a collection",
    responses=error_responses(Unauthorized, CollectionNotFound),
)
async def get_collection(
    collection: ReadableCollection, user: CurrentUser, service: KnowledgeServiceDep
) -> CollectionRead:
    """Its files' counts, the retrieval in use, and whether it needs re-indexing (yours, or
    shared with one of your groups)."""
    return (await service.read([collection], user))[0]


@router.patch(
    "/{collection_id}",
    summary="Rename or share a collection",
    responses=error_responses(
        Unauthorized, CsrfFailed, CollectionReadOnly, CollectionNotFound, UnknownGroups
    ),
)
async def update_collection(
    body: CollectionUpdate,
    collection: OwnedCollection,
    user: CurrentUser,
    service: KnowledgeServiceDep,
) -> CollectionRead:
    """Changes the name, the description or the groups it is shared with (only the fields
    sent). Only the owner changes a collection (403 `collection_read_only` for a member)."""
    return await service.update(user, collection, body)


@router.delete(
    "/{collection_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a collection",
    responses=error_responses(Unauthorized, CsrfFailed, CollectionReadOnly, CollectionNotFound),
)
async def delete_collection(collection: OwnedCollection, service: KnowledgeServiceDep) -> Response:
    """Deletes the collection and its index; the files stay in your files."""
    await service.delete(collection)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{collection_id}/files",
    status_code=status.HTTP_201_CREATED,
    summary="Add a file to a collection",
    responses=error_responses(
        Unauthorized,
        CsrfFailed,
        CollectionReadOnly,
        CollectionNotFound,
        FileNotFound,
        NotADocument,
        CollectionFileLimit,
    ),
)
async def add_collection_file(
    body: CollectionFileAdd,
    collection: OwnedCollection,
    user: CurrentUser,
    service: KnowledgeServiceDep,
) -> CollectionFileRead:
    """Queues one of your documents for ingestion (status `queued`, then `processing`, then
    `ready` or `failed` with the reason). Adding a failed file again retries it; the same
    bytes are never ingested twice."""
    return await service.add_file(user, collection, body.file_id)


@router.get(
    "/{collection_id}/files",
    summary="List a collection's files",
    responses=error_responses(Unauthorized, CollectionNotFound),
)
async def list_collection_files(
    collection: ReadableCollection, service: KnowledgeServiceDep
) -> list[CollectionFileRead]:
    """Each file's ingestion status, chunk count and what the caps cut."""
    return await service.list_files(collection)


@router.delete(
    "/{collection_id}/files/{file_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a file from a collection",
    responses=error_responses(
        Unauthorized, CsrfFailed, CollectionReadOnly, CollectionNotFound, CollectionFileNotFound
    ),
)
async def remove_collection_file(
    file_id: uuid.UUID, collection: OwnedCollection, service: KnowledgeServiceDep
) -> Response:
    """Takes the file out of the collection and its index; the file stays in your files."""
    await service.remove_file(collection, file_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{collection_id}/reindex",
    summary="Re-index a collection",
    responses=error_responses(Unauthorized, CsrfFailed, CollectionReadOnly, CollectionNotFound),
)
async def reindex_collection(
    collection: OwnedCollection, user: CurrentUser, service: KnowledgeServiceDep
) -> CollectionRead:
    """Queues the files indexed with another embedding model or dimension (and failed files)
    for ingestion with the current one."""
    return await service.reindex(user, collection)


Query_ = Annotated[
    str,
    Query(min_length=1, max_length=1000, description="What to search for."),
    NoNul,
]


@router.get(
    "/{collection_id}/search",
    summary="Search a collection",
    responses=error_responses(Unauthorized, CollectionNotFound, EmptyQuery),
)
async def search_collection(
    q: Query_,
    collection: ReadableCollection,
    user: CurrentUser,
    service: KnowledgeServiceDep,
    limit: Annotated[int, Query(ge=1, le=50, description="Hits at most.")] = 10,
    explain: Annotated[
        bool,
        Query(
            description="Say per hit what ranked it: its full-text and vector ranks, similarity, "
            "fused score and reranker score."
        ),
    ] = False,
) -> SearchResult:
    """The chunks retrieval would find for `q` (hybrid or full text), best first."""
    return await service.search(user, collection, q, limit=limit, explain=explain)
