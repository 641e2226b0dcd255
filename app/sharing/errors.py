"""The sharing domain's errors."""

from app.core.errors import NotFound


class ShareNotFound(NotFound):
    code = "share_not_found"
    message = "This link does not exist or was revoked."


class SharedFileNotFound(NotFound):
    code = "shared_file_not_found"
    message = "This image is not part of the shared chat."
