"""The files domain's errors: each a status, a stable code and a message that names the file."""

from app.core.cursor import InvalidCursor
from app.core.errors import AppError, Conflict, FieldError, NotFound, ServiceUnavailable

# The longest name kept (the file table's column); longer names sent are shortened to it.
MAX_STORED_NAME = 255

ALLOWED_TYPES = (
    "PNG, JPEG, WebP and GIF images; PDF, DOCX, plain text, Markdown, CSV, JSON, HTML and "
    "source code (UTF-8)"
)


class FileNotFound(NotFound):
    code = "file_not_found"
    message = "File not found."


class InvalidUpload(AppError):
    status_code = 400
    code = "invalid_upload"
    message = "Send the file as multipart/form-data with one part named `file` that has a filename."


class FileMissing(AppError):
    status_code = 422
    code = "file_missing"
    message = "The form has no part named `file` with a filename."

    def __init__(self) -> None:
        super().__init__(
            details=[FieldError(field="body.file", message=self.message, type="missing")]
        )


class UploadIncomplete(AppError):
    status_code = 400
    code = "upload_incomplete"
    message = "The upload ended before the whole form arrived."


class UploadTimeout(AppError):
    status_code = 408
    code = "upload_timeout"
    message = "The upload took too long."


class FileTooLarge(AppError):
    status_code = 413
    code = "file_too_large"
    message = "The file is larger than FILE_MAX_BYTES."

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"Files may be at most {max_bytes} bytes ({max_bytes / 2**20:.1f} MiB).")


class StorageQuotaExceeded(AppError):
    status_code = 413
    code = "storage_quota_exceeded"
    message = "The upload would exceed your storage quota (STORAGE_QUOTA_BYTES)."

    def __init__(self, *, quota: int, used: int) -> None:
        super().__init__(
            f"This upload would exceed your storage quota of {quota} bytes ({used} in use); "
            "delete some files first."
        )


class InvalidFileName(AppError):
    status_code = 422
    code = "invalid_file_name"
    message = "The file name must not contain NUL characters or '..' path segments."


class FileNameTooLong(AppError):
    status_code = 422
    code = "file_name_too_long"
    message = "The file name is too long."

    def __init__(self, length: int | None, limit: int) -> None:
        what = f"is {length} characters long" if length is not None else "is too long"
        super().__init__(
            f"The file name {what}; names may be at most {limit} characters (longer ones "
            f"are stored shortened to {MAX_STORED_NAME} characters, the extension kept).",
            details=[FieldError(field="body.file", message=self.message, type="too_long")],
        )


class EmptyFile(AppError):
    status_code = 422
    code = "empty_file"
    message = "The file is empty."

    def __init__(self, name: str) -> None:
        super().__init__(f"“{name}” is empty.")


class UnsupportedFileType(AppError):
    status_code = 415
    code = "unsupported_file_type"
    message = f"The content is not an allowed type ({ALLOWED_TYPES}), whatever its name says."

    def __init__(self, name: str, what: str) -> None:
        super().__init__(f"“{name}” is {what}, which cannot be uploaded. Allowed: {ALLOWED_TYPES}.")


class CorruptFile(AppError):
    status_code = 422
    code = "corrupt_file"
    message = "The file is truncated or damaged."

    def __init__(self, name: str, what: str) -> None:
        super().__init__(f"“{name}” is not a readable {what}: it is truncated or damaged.")


class ImageTooLarge(AppError):
    status_code = 422
    code = "image_too_large"
    message = "The image has more pixels than allowed (IMAGE_MAX_PIXELS)."

    def __init__(self, name: str, size: tuple[int, int] | None, max_pixels: int) -> None:
        dimensions = f" is {size[0]}x{size[1]} pixels;" if size else " has too many pixels:"
        super().__init__(
            f"“{name}”{dimensions} images may have at most {max_pixels} pixels "
            f"({max_pixels / 1e6:g} megapixels, IMAGE_MAX_PIXELS). Scale it down and upload it "
            "again."
        )


class DocumentEncrypted(AppError):
    status_code = 422
    code = "document_encrypted"
    message = "The document is encrypted."

    def __init__(self, name: str) -> None:
        super().__init__(f"“{name}” is encrypted (password-protected); its text cannot be read.")


class DocumentUnreadable(AppError):
    status_code = 422
    code = "document_unreadable"
    message = "The document is damaged."

    def __init__(self, name: str) -> None:
        super().__init__(f"“{name}” is damaged or not a valid document; its text cannot be read.")


class DocumentTooLarge(DocumentUnreadable):
    """A zip-based document (DOCX) that would inflate too much: a zip bomb, or near enough."""

    code = "document_too_large"
    message = "The document would inflate too much when unpacked (a zip bomb?)."

    def __init__(self, name: str, reason: str) -> None:
        AppError.__init__(self, f"“{name}” {reason}; it is refused as a possible zip bomb.")


class ExtractionTimeout(AppError):
    status_code = 422
    code = "extraction_timeout"
    message = "The document took too long to read (EXTRACT_MAX_SECONDS)."

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(
            f"“{name}” took longer than {seconds:g} seconds to read, the most one document may "
            "take; its text was not read. Paste its text, or save it again (e.g. print it to a "
            "new PDF) and upload that."
        )


class DocumentHasNoText(AppError):
    status_code = 422
    code = "document_has_no_text"
    message = "The document has no text."

    def __init__(self, name: str) -> None:
        super().__init__(
            f"“{name}” has no text to read (a scan or pictures only?); attach it as an image "
            "or paste its text."
        )


class TooManyAttachments(AppError):
    status_code = 422
    code = "too_many_attachments"
    message = "Too many files attached to one message (MAX_ATTACHMENTS)."

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"{count} files are attached; a message may have at most {limit}.",
            details=[FieldError(field="body.attachments", message=self.message, type="too_long")],
        )


class DuplicateAttachment(AppError):
    status_code = 422
    code = "duplicate_attachment"
    message = "The same file is attached twice."

    def __init__(self, file_id: str) -> None:
        super().__init__(
            f"File {file_id} is attached more than once; attach each file once.",
            details=[FieldError(field="body.attachments", message=self.message, type="duplicate")],
        )


class FileInUse(Conflict):
    code = "file_in_use"
    message = "The file is attached to messages; delete those chats first."

    def __init__(self, name: str, *, messages: int, chats: int) -> None:
        where = f"{messages} message{'s' if messages != 1 else ''}"
        where += f" in {chats} chat{'s' if chats != 1 else ''}"
        super().__init__(
            f"“{name}” is attached to {where}; deleting it would take it out of their history. "
            "Delete those chats first, or keep the file."
        )


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"
    message = "File storage is unavailable; try again later."


__all__ = ["InvalidCursor"]


class ContentMissing(StorageUnavailable):
    """A file's bytes are not in storage: lost, or the file was deleted while it was read."""

    message = "A file's content is missing from storage."
