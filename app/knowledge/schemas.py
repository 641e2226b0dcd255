import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.text import NoNul
from app.knowledge.models import DocumentStatus

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul]
Description = Annotated[str, StringConstraints(max_length=2000), NoNul]
Retrieval = Literal["hybrid", "full_text"]
MAX_COLLECTIONS_PER_CHAT = 20
CollectionIds = Annotated[
    list[uuid.UUID],
    Field(
        max_length=MAX_COLLECTIONS_PER_CHAT,
        description="Ids of your collections (GET /api/collections) to retrieve from, at most 20.",
    ),
]


class CollectionCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Product manuals"}]})

    name: Name
    description: Description | None = None


class CollectionUpdate(BaseModel):
    """Only the fields sent change."""

    name: Name | None = None
    description: Description | None = None
    group_ids: list[uuid.UUID] | None = Field(
        default=None,
        max_length=50,
        description="Share the collection with these groups (yours: GET /api/groups/mine), "
        "replacing the groups it was shared with; `[]` shares it with none. Their members may "
        "use and search it; only you change it.",
    )


class CollectionRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    owned: bool = Field(
        description="Yours; false: shared with you through a group (use and search it only)."
    )
    group_ids: list[uuid.UUID] = Field(
        description="The groups you shared it with (your collections only; [] otherwise)."
    )
    created_at: datetime
    updated_at: datetime
    file_count: int
    ready_count: int = Field(description="Files indexed and searchable.")
    retrieval: Retrieval = Field(
        description="`hybrid`: vector and full-text search fused; `full_text`: no embedding "
        "endpoint (EMBEDDING_BASE_URL) or no vector index on this database."
    )
    needs_reindex: bool = Field(
        description="Some files were indexed with another embedding model or dimension: they "
        "are searched by full text only until POST .../reindex."
    )


class CollectionFileAdd(BaseModel):
    file_id: uuid.UUID


class CollectionFileRead(BaseModel):
    file_id: uuid.UUID
    name: str
    media_type: str
    status: DocumentStatus = Field(description="queued, processing, ready or failed.")
    error_code: str | None = Field(description="Why it failed (failed only).")
    error_message: str | None
    chunk_count: int
    page_count: int | None
    cuts: list[str] = Field(description="What the caps left out (RAG_MAX_PAGES, ...).")
    added_at: datetime
    updated_at: datetime


class SourceRead(BaseModel):
    """A chunk that retrieval found: where it is from, how well it matched, and its start."""

    file_id: uuid.UUID
    name: str
    collection_id: uuid.UUID
    page: int | None = Field(description="PDF page (1-based), when the document has pages.")
    section: str | None = Field(description="The heading above the chunk, if any.")
    score: float = Field(
        description="The score the hits are ordered by, higher first: the reranker's when one "
        "ran (RERANK_BASE_URL), else the fused score (RAG_FUSION)."
    )
    similarity: float | None = Field(
        description="Cosine similarity to the query (vector matches only)."
    )
    snippet: str


class SearchExplain(BaseModel):
    """What ranked a hit (GET .../search?explain=true)."""

    lexical_rank: int | None = Field(
        description="Its rank in the full-text list (1 is best); null when full text missed it."
    )
    vector_rank: int | None = Field(
        description="Its rank in the vector list (1 is best); null when the vectors missed it "
        "or fell below RAG_MIN_SIMILARITY."
    )
    similarity: float | None = Field(description="Cosine similarity to the query's vector.")
    fused_score: float = Field(description="The score fusion gave it (RAG_FUSION).")
    rerank_score: float | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The reranker's score; absent when no reranker scored it.",
    )


class SearchHit(SourceRead):
    text: str = Field(description="The whole chunk, as a prompt would quote it.")
    explain: SearchExplain | None = Field(
        default=None, description="With explain=true: what ranked this hit."
    )


class SearchResult(BaseModel):
    query: str
    retrieval: Retrieval
    hits: list[SearchHit]
