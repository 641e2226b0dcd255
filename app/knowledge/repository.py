"""Every query of the knowledge domain, but the index's own (index.py)."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from app.core.repository import Repository
from app.files.models import File
from app.groups.models import GroupMember
from app.knowledge.models import (
    Collection,
    CollectionFile,
    CollectionGroup,
    DocumentStatus,
    KnowledgeChunk,
    KnowledgeDocument,
)

MAX_ATTEMPTS = 3


class CollectionRepository(Repository[Collection]):
    model = Collection

    def _readable(self, user_id: uuid.UUID) -> ColumnElement[bool]:
        """The collections the user may read: their own, and those shared with a group they
        are a member of."""
        shared = (
            select(CollectionGroup.collection_id)
            .join(GroupMember, GroupMember.group_id == CollectionGroup.group_id)
            .where(GroupMember.user_id == user_id)
        )
        return or_(Collection.user_id == user_id, Collection.id.in_(shared))

    async def usable(
        self, user_id: uuid.UUID, collection_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, uuid.UUID]:
        """Of `collection_ids`, those the user may read, each with its owner's id."""
        if not collection_ids:
            return {}
        rows = await self.session.execute(
            select(Collection.id, Collection.user_id).where(
                Collection.id.in_(list(collection_ids)), self._readable(user_id)
            )
        )
        return {row[0]: row[1] for row in rows}

    async def get_readable(self, user_id: uuid.UUID, collection_id: uuid.UUID) -> Collection | None:
        return await self.session.scalar(
            select(Collection).where(Collection.id == collection_id, self._readable(user_id))
        )

    async def shared_with(self, user_id: uuid.UUID) -> list[Collection]:
        """Collections of others shared with a group the user is a member of, newest first."""
        shared = (
            select(CollectionGroup.collection_id)
            .join(GroupMember, GroupMember.group_id == CollectionGroup.group_id)
            .where(GroupMember.user_id == user_id)
        )
        rows = await self.session.scalars(
            select(Collection)
            .where(Collection.id.in_(shared), Collection.user_id != user_id)
            .order_by(Collection.created_at.desc(), Collection.id.desc())
            .limit(1000)
        )
        return list(rows)

    async def group_ids(
        self, collection_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        """The groups each collection is shared with."""
        found: dict[uuid.UUID, list[uuid.UUID]] = {}
        if not collection_ids:
            return found
        rows = await self.session.execute(
            select(CollectionGroup.collection_id, CollectionGroup.group_id)
            .where(CollectionGroup.collection_id.in_(list(collection_ids)))
            .order_by(CollectionGroup.group_id)
        )
        for collection_id, group_id in rows:
            found.setdefault(collection_id, []).append(group_id)
        return found

    async def set_groups(self, collection_id: uuid.UUID, group_ids: Sequence[uuid.UUID]) -> None:
        """Shares the collection with exactly these groups."""
        await self.session.execute(
            delete(CollectionGroup).where(CollectionGroup.collection_id == collection_id)
        )
        if group_ids:
            await self.session.execute(
                insert(CollectionGroup),
                [{"collection_id": collection_id, "group_id": g} for g in set(group_ids)],
            )

    async def list_for_user(self, user_id: uuid.UUID) -> list[Collection]:
        rows = await self.session.scalars(
            select(Collection)
            .where(Collection.user_id == user_id)
            .order_by(Collection.created_at.desc(), Collection.id.desc())
            .limit(1000)
        )
        return list(rows)

    async def stats(
        self, collection_ids: Sequence[uuid.UUID], space: str
    ) -> dict[uuid.UUID, tuple[int, int, bool]]:
        """(files, ready files, whether some file is indexed in another space) per collection."""
        if not collection_ids:
            return {}
        ready = func.sum(case((KnowledgeDocument.status == DocumentStatus.READY, 1), else_=0))
        stale = func.sum(case((KnowledgeDocument.space != space, 1), else_=0))
        rows = await self.session.execute(
            select(CollectionFile.collection_id, func.count(), ready, stale)
            .join(KnowledgeDocument, KnowledgeDocument.id == CollectionFile.document_id)
            .where(CollectionFile.collection_id.in_(list(collection_ids)))
            .group_by(CollectionFile.collection_id)
        )
        return {row[0]: (int(row[1]), int(row[2] or 0), bool(row[3])) for row in rows}


class CollectionFileRepository(Repository[CollectionFile]):
    model = CollectionFile

    async def get(  # type: ignore[override]
        self, collection_id: uuid.UUID, file_id: uuid.UUID
    ) -> CollectionFile | None:
        return await self.session.get(CollectionFile, (collection_id, file_id))

    async def count(self, collection_id: uuid.UUID) -> int:
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(CollectionFile)
                .where(CollectionFile.collection_id == collection_id)
            )
            or 0
        )

    async def listing(
        self, collection_id: uuid.UUID
    ) -> list[tuple[CollectionFile, File, KnowledgeDocument]]:
        rows = await self.session.execute(
            select(CollectionFile, File, KnowledgeDocument)
            .join(File, File.id == CollectionFile.file_id)
            .join(KnowledgeDocument, KnowledgeDocument.id == CollectionFile.document_id)
            .where(CollectionFile.collection_id == collection_id)
            .order_by(CollectionFile.added_at, CollectionFile.file_id)
            .limit(10_000)
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def one(
        self, collection_id: uuid.UUID, file_id: uuid.UUID
    ) -> tuple[CollectionFile, File, KnowledgeDocument] | None:
        row = await self.session.execute(
            select(CollectionFile, File, KnowledgeDocument)
            .join(File, File.id == CollectionFile.file_id)
            .join(KnowledgeDocument, KnowledgeDocument.id == CollectionFile.document_id)
            .where(CollectionFile.collection_id == collection_id, CollectionFile.file_id == file_id)
        )
        first = row.first()
        return (first[0], first[1], first[2]) if first is not None else None

    async def of_collection(self, collection_id: uuid.UUID) -> list[tuple[CollectionFile, File]]:
        rows = await self.session.execute(
            select(CollectionFile, File)
            .join(File, File.id == CollectionFile.file_id)
            .where(CollectionFile.collection_id == collection_id)
        )
        return [(row[0], row[1]) for row in rows]


class DocumentRepository(Repository[KnowledgeDocument]):
    model = KnowledgeDocument

    async def find(self, user_id: uuid.UUID, sha256: str, space: str) -> KnowledgeDocument | None:
        return await self.session.scalar(
            select(KnowledgeDocument).where(
                KnowledgeDocument.user_id == user_id,
                KnowledgeDocument.sha256 == sha256,
                KnowledgeDocument.space == space,
            )
        )

    async def fail_abandoned(self, now: datetime) -> int:
        """Documents whose worker vanished MAX_ATTEMPTS times fail, rather than being retried
        forever (a document that crashes its worker every time)."""
        result = await self.session.execute(
            update(KnowledgeDocument)
            .where(
                KnowledgeDocument.status == DocumentStatus.PROCESSING,
                KnowledgeDocument.lease_until < now,
                KnowledgeDocument.attempts >= MAX_ATTEMPTS,
            )
            .values(
                status=DocumentStatus.FAILED,
                error_code="ingestion_interrupted",
                error_message=(
                    f"Ingestion stopped {MAX_ATTEMPTS} times before it finished (the server "
                    "restarted or crashed). Add the file again to retry."
                ),
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def claim(
        self, owner: uuid.UUID, *, now: datetime, lease_until: datetime, per_user: int
    ) -> uuid.UUID | None:
        """Takes one document to ingest: a queued one, or one whose worker's lease lapsed. The
        conditional UPDATE makes the claim atomic: of two workers, one gets it.

        Fair between users: the document comes from the user with the fewest documents being
        ingested (oldest first among equals), and never from a user who has `per_user` being
        ingested already, so one user's many (or slow) files leave workers for everyone else.
        Two claims at the same instant may both pick the same user, once."""
        claimable = or_(
            KnowledgeDocument.status == DocumentStatus.QUEUED,
            and_(
                KnowledgeDocument.status == DocumentStatus.PROCESSING,
                KnowledgeDocument.lease_until < now,
            ),
        )
        busy = aliased(KnowledgeDocument)
        in_flight = (
            select(func.count())
            .select_from(busy)
            .where(
                busy.user_id == KnowledgeDocument.user_id,
                busy.status == DocumentStatus.PROCESSING,
                busy.lease_until >= now,
            )
            .scalar_subquery()
        )
        candidate = await self.session.scalar(
            select(KnowledgeDocument.id)
            .where(claimable, in_flight < per_user)
            .order_by(in_flight, KnowledgeDocument.updated_at)
            .limit(1)
        )
        if candidate is None:
            return None
        result = await self.session.execute(
            update(KnowledgeDocument)
            .where(KnowledgeDocument.id == candidate, claimable)
            .values(
                status=DocumentStatus.PROCESSING,
                lease_owner=owner,
                lease_until=lease_until,
                attempts=KnowledgeDocument.attempts + 1,
                updated_at=now,
            )
        )
        return candidate if result.rowcount == 1 else None  # type: ignore[attr-defined]

    async def renew(self, document_id: uuid.UUID, owner: uuid.UUID, lease_until: datetime) -> bool:
        result = await self.session.execute(
            update(KnowledgeDocument)
            .where(
                KnowledgeDocument.id == document_id,
                KnowledgeDocument.lease_owner == owner,
                KnowledgeDocument.status == DocumentStatus.PROCESSING,
            )
            .values(lease_until=lease_until)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]

    async def held(self, document_id: uuid.UUID, owner: uuid.UUID) -> KnowledgeDocument | None:
        """The document if this worker still holds it (locked on Postgres until commit)."""
        return await self.session.scalar(
            select(KnowledgeDocument)
            .where(
                KnowledgeDocument.id == document_id,
                KnowledgeDocument.lease_owner == owner,
                KnowledgeDocument.status == DocumentStatus.PROCESSING,
            )
            .with_for_update()
        )

    async def source_file(self, document: KnowledgeDocument) -> File | None:
        """A file holding the document's bytes (any of the user's files in a collection)."""
        return await self.session.scalar(
            select(File)
            .join(CollectionFile, CollectionFile.file_id == File.id)
            .where(CollectionFile.document_id == document.id)
            .limit(1)
        )

    async def orphans(self, *, limit: int = 100) -> list[uuid.UUID]:
        """Documents no collection lists any more."""
        rows = await self.session.scalars(
            select(KnowledgeDocument.id)
            .where(
                ~select(CollectionFile.document_id)
                .where(CollectionFile.document_id == KnowledgeDocument.id)
                .exists()
            )
            .limit(limit)
        )
        return list(rows)

    async def chunk_ids(self, document_ids: Sequence[uuid.UUID]) -> list[int]:
        rows = await self.session.scalars(
            select(KnowledgeChunk.id).where(KnowledgeChunk.document_id.in_(list(document_ids)))
        )
        return list(rows)

    async def delete_ids(self, document_ids: Sequence[uuid.UUID]) -> None:
        await self.session.execute(
            delete(KnowledgeDocument).where(KnowledgeDocument.id.in_(list(document_ids)))
        )

    async def add_chunks(self, rows: list[dict[str, Any]]) -> list[int]:
        """Inserts chunks; their ids, in order."""
        if not rows:
            return []
        result = await self.session.execute(
            insert(KnowledgeChunk).returning(KnowledgeChunk.id, sort_by_parameter_order=True),
            rows,
        )
        return [int(row[0]) for row in result]

    async def chunk_details(
        self,
        chunk_ids: Sequence[int],
        *,
        owner_ids: Sequence[uuid.UUID],
        collection_ids: Sequence[uuid.UUID],
    ) -> dict[int, Row[Any]]:
        """Each chunk's text and place, and a file and collection (of those asked for, owned by
        `owner_ids`) it is in."""
        if not chunk_ids:
            return {}
        rows = await self.session.execute(
            select(
                KnowledgeChunk.id,
                KnowledgeChunk.text,
                KnowledgeChunk.page,
                KnowledgeChunk.section,
                CollectionFile.file_id,
                File.name,
                CollectionFile.collection_id,
            )
            .join(CollectionFile, CollectionFile.document_id == KnowledgeChunk.document_id)
            .join(Collection, Collection.id == CollectionFile.collection_id)
            .join(File, File.id == CollectionFile.file_id)
            .where(
                KnowledgeChunk.id.in_(list(chunk_ids)),
                Collection.user_id.in_(list(owner_ids)),
                CollectionFile.collection_id.in_(list(collection_ids)),
            )
        )
        found: dict[int, Row[Any]] = {}
        for row in rows:
            found.setdefault(int(row[0]), row)  # type: ignore[arg-type]
        return found
