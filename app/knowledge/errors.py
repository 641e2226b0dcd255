"""The knowledge domain's errors."""

from app.core.errors import AppError, NotFound


class CollectionNotFound(NotFound):
    code = "collection_not_found"
    message = "Collection not found."


class CollectionFileNotFound(NotFound):
    code = "collection_file_not_found"
    message = "That file is not in this collection."


class NotADocument(AppError):
    status_code = 422
    code = "unsupported_kind"
    message = (
        "Only documents (PDF, DOCX, plain text, Markdown, CSV, JSON, HTML, source code) can be "
        "added to a collection, not images."
    )


class EmptyQuery(AppError):
    status_code = 422
    code = "empty_query"
    message = "The query has no words to search for."


class TooManyCollections(AppError):
    status_code = 422
    code = "too_many_collections"
    message = "A chat or message may name at most 20 collections."


class CollectionFileLimit(AppError):
    status_code = 409
    code = "collection_full"
    message = "A collection holds at most 10,000 files."


# Why ingestion failed: the `error_code` of a failed file (not HTTP errors: the file's status).
class IngestionFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EmbeddingFailed(IngestionFailure):
    """The embedding endpoint was down, slow, or answered something that is not embeddings."""


class CollectionReadOnly(AppError):
    status_code = 403
    code = "collection_read_only"
    message = "This collection is shared with you: only its owner changes it."
