"""Collections and their files (the request side): ownership, queuing ingestion, re-indexing,
and direct search."""

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from app.core.db import utcnow
from app.core.uow import UnitOfWork
from app.files.errors import FileNotFound
from app.files.models import File, FileKind
from app.files.repository import FileRepository
from app.groups.errors import UnknownGroups
from app.groups.repository import GroupRepository
from app.knowledge.errors import (
    CollectionFileLimit,
    CollectionFileNotFound,
    CollectionNotFound,
    CollectionReadOnly,
    EmptyQuery,
    NotADocument,
)
from app.knowledge.index import query_words
from app.knowledge.models import Collection, CollectionFile, DocumentStatus, KnowledgeDocument
from app.knowledge.parts import KnowledgeParts
from app.knowledge.repository import (
    CollectionFileRepository,
    CollectionRepository,
    DocumentRepository,
)
from app.knowledge.schemas import (
    CollectionCreate,
    CollectionFileRead,
    CollectionRead,
    CollectionUpdate,
    SearchResult,
)
from app.users.models import Role, User

MAX_FILES_PER_COLLECTION = 10_000


@dataclass(kw_only=True)
class KnowledgeService:
    uow: UnitOfWork
    runtime: KnowledgeParts

    def __post_init__(self) -> None:
        self.collections = self.uow.get(CollectionRepository)
        self.links = self.uow.get(CollectionFileRepository)
        self.documents = self.uow.get(DocumentRepository)
        self.files = self.uow.get(FileRepository)

    # --- collections -----------------------------------------------------------------------

    async def get_readable(self, user: User, collection_id: uuid.UUID) -> Collection:
        """The user's collection, or one shared with a group they are a member of;
        CollectionNotFound for any other (never 403)."""
        collection = await self.collections.get_readable(user.id, collection_id)
        if collection is None:
            raise CollectionNotFound()
        return collection

    async def get_owned(self, user: User, collection_id: uuid.UUID) -> Collection:
        """The user's collection, to change; CollectionReadOnly (403) for one shared with them,
        CollectionNotFound for any other (never 403)."""
        collection = await self.get_readable(user, collection_id)
        if collection.user_id != user.id:
            raise CollectionReadOnly()
        return collection

    async def read(self, collections: list[Collection], user: User) -> list[CollectionRead]:
        ids = [c.id for c in collections]
        stats = await self.collections.stats(ids, self.runtime.space)
        owned = [c.id for c in collections if c.user_id == user.id]
        shared = await self.collections.group_ids(owned)
        reads = []
        for collection in collections:
            files, ready, stale = stats.get(collection.id, (0, 0, False))
            reads.append(
                CollectionRead(
                    id=collection.id,
                    name=collection.name,
                    description=collection.description,
                    owned=collection.user_id == user.id,
                    group_ids=shared.get(collection.id, []),
                    created_at=collection.created_at,
                    updated_at=collection.updated_at,
                    file_count=files,
                    ready_count=ready,
                    retrieval=self.runtime.retrieval,
                    needs_reindex=stale,
                )
            )
        return reads

    async def create(self, user: User, data: CollectionCreate) -> CollectionRead:
        """Creates an empty collection."""
        now = utcnow()
        collection = await self.collections.add(
            Collection(
                user_id=user.id,
                name=data.name,
                description=data.description,
                created_at=now,
                updated_at=now,
            )
        )
        return (await self.read([collection], user))[0]

    async def list_collections(self, user: User) -> list[CollectionRead]:
        """The user's collections, newest first, then those shared with their groups."""
        own = await self.collections.list_for_user(user.id)
        return await self.read(own + await self.collections.shared_with(user.id), user)

    async def update(
        self, user: User, collection: Collection, data: CollectionUpdate
    ) -> CollectionRead:
        """Renames, re-describes or shares a collection (only the fields sent). It can be shared
        with groups its owner is a member of (an administrator: any group)."""
        sent = data.model_fields_set
        if "group_ids" in sent and data.group_ids is not None:
            await self._check_groups(user, data.group_ids)
            await self.collections.set_groups(collection.id, data.group_ids)
        if "name" in sent and data.name is not None:
            collection.name = data.name
        if "description" in sent:
            collection.description = data.description
        collection.updated_at = utcnow()
        await self.uow.flush()
        return (await self.read([collection], user))[0]

    async def _check_groups(self, user: User, group_ids: list[uuid.UUID]) -> None:
        groups = self.uow.get(GroupRepository)
        wanted = set(group_ids)
        allowed = (
            await groups.existing(list(wanted))
            if user.role == Role.ADMIN
            else await groups.member_group_ids(user.id)
        )
        if wanted - allowed:
            raise UnknownGroups()

    async def delete(self, collection: Collection) -> None:
        """Deletes a collection; documents no other collection lists go with it."""
        await self.collections.delete(collection)
        await self._drop_orphans()

    # --- files -----------------------------------------------------------------------------

    async def _drop_orphans(self) -> None:
        orphans = await self.documents.orphans(limit=MAX_FILES_PER_COLLECTION)
        await self.runtime.delete_documents(self.uow, orphans)

    async def _document(self, user_id: uuid.UUID, sha256: str) -> KnowledgeDocument:
        """The document for these bytes in the current space: the existing one (its chunks
        reused; requeued if it had failed), or a new queued one."""
        space = self.runtime.space
        document = await self.documents.find(user_id, sha256, space)
        if document is None:
            try:
                async with self.uow.savepoint():
                    now = utcnow()
                    document = await self.documents.add(
                        KnowledgeDocument(
                            user_id=user_id,
                            sha256=sha256,
                            space=space,
                            status=DocumentStatus.QUEUED,
                            chunk_count=0,
                            attempts=0,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            except IntegrityError:  # the same bytes added by a concurrent request
                document = await self.documents.find(user_id, sha256, space)
                if document is None:
                    raise
        if document.status == DocumentStatus.FAILED:
            document.status = DocumentStatus.QUEUED
            document.error_code = document.error_message = None
            document.attempts = 0
            document.updated_at = utcnow()
        if document.status == DocumentStatus.QUEUED:
            self.uow.after_commit(self.runtime.workers.notify)
        return document

    async def add_file(
        self, user: User, collection: Collection, file_id: uuid.UUID
    ) -> CollectionFileRead:
        """Adds one of the user's documents; it is ingested in the background. Adding it again
        retries a failed ingestion."""
        file = await self.files.get_for_user(user.id, file_id)
        if file is None:
            raise FileNotFound()
        if file.kind != FileKind.DOCUMENT:
            raise NotADocument()
        link = await self.links.get(collection.id, file.id)
        if link is None:
            if await self.links.count(collection.id) >= MAX_FILES_PER_COLLECTION:
                raise CollectionFileLimit()
            document = await self._document(user.id, file.sha256)
            link = CollectionFile(
                collection_id=collection.id,
                file_id=file.id,
                document_id=document.id,
                added_at=utcnow(),
            )
            try:
                async with self.uow.savepoint():
                    await self.links.add(link)
            except IntegrityError:  # added by a concurrent request: that link stands
                pass
        else:
            linked = await self.documents.get(link.document_id)
            if linked is not None and linked.status == DocumentStatus.FAILED:
                await self._document(user.id, file.sha256)
        collection.updated_at = utcnow()
        await self.uow.flush()
        return await self.file_read(collection, file.id)

    async def file_read(self, collection: Collection, file_id: uuid.UUID) -> CollectionFileRead:
        row = await self.links.one(collection.id, file_id)
        if row is None:
            raise CollectionFileNotFound()
        return _file_read(row[0], row[1], row[2])

    async def list_files(self, collection: Collection) -> list[CollectionFileRead]:
        """Every file of the collection with its ingestion status, oldest first."""
        return [_file_read(r[0], r[1], r[2]) for r in await self.links.listing(collection.id)]

    async def remove_file(self, collection: Collection, file_id: uuid.UUID) -> None:
        """Takes a file out of the collection (the file itself stays in the user's files)."""
        link = await self.links.get(collection.id, file_id)
        if link is None:
            raise CollectionFileNotFound()
        await self.links.delete(link)
        collection.updated_at = utcnow()
        await self._drop_orphans()

    async def reindex(self, user: User, collection: Collection) -> CollectionRead:
        """Queues every file indexed in another embedding space (model or dimensions) for the
        current one, and retries every failed file."""
        for link, file in await self.links.of_collection(collection.id):
            document = await self.documents.get(link.document_id)
            if document is None:
                continue
            if document.space != self.runtime.space or document.status == DocumentStatus.FAILED:
                fresh = await self._document(collection.user_id, file.sha256)
                link.document_id = fresh.id
        await self.uow.flush()
        await self._drop_orphans()
        collection.updated_at = utcnow()
        await self.uow.flush()
        return (await self.read([collection], user))[0]

    # --- search ----------------------------------------------------------------------------

    async def search(
        self, user: User, collection: Collection, query: str, *, limit: int, explain: bool = False
    ) -> SearchResult:
        """The collection's best chunks for a query, as retrieval in a chat would find them;
        `explain`: with what ranked each."""
        if not query_words(query):
            raise EmptyQuery()
        # No connection is held while the query is embedded (a network call).
        await self.uow.commit()
        retriever = self.runtime.retriever
        # The embedding endpoint sees the query with personal data replaced per PII_*; the
        # full-text search, which never leaves the server, reads it as written.
        sent = query
        if self.runtime.guardrails is not None:
            sent, _found = self.runtime.guardrails.for_embedding(query, point="input")
        vector = await retriever.embed_query(sent)
        hits = await retriever.search(
            user_id=user.id,
            collection_ids=[collection.id],
            query=query,
            top_k=limit,
            vector=vector,
            explain=explain,
        )
        return SearchResult(
            query=query, retrieval="hybrid" if vector is not None else "full_text", hits=hits
        )


def _file_read(link: CollectionFile, file: File, document: KnowledgeDocument) -> CollectionFileRead:
    return CollectionFileRead(
        file_id=link.file_id,
        name=file.name,
        media_type=file.media_type,
        status=DocumentStatus(document.status),
        error_code=document.error_code,
        error_message=document.error_message,
        chunk_count=document.chunk_count,
        page_count=document.page_count,
        cuts=document.cuts or [],
        added_at=link.added_at,
        updated_at=document.updated_at,
    )
