from app.chats.transfer.formats import EXPECTED
from app.core.errors import AppError, FieldError


class ImportTooLarge(AppError):
    status_code = 413
    code = "import_too_large"
    message = "The file is larger than IMPORT_MAX_BYTES."

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"Imports may be at most {max_bytes} bytes ({max_bytes / 2**20:.1f} MiB).")


class NoImportFile(AppError):
    status_code = 422
    code = "file_missing"
    message = "The form has no part named `file` with a filename."

    def __init__(self) -> None:
        super().__init__(
            details=[FieldError(field="body.file", message=self.message, type="missing")]
        )


class UnsupportedImport(AppError):
    status_code = 422
    code = "unsupported_import"
    message = f"The file is not an export Parley can import. Expected {EXPECTED}."

    def __init__(self, found: str) -> None:
        super().__init__(f"{found} Expected {EXPECTED}.")


class InvalidInclude(AppError):
    status_code = 422
    code = "invalid_include"
    message = "`include` may name only `archived` and `trashed`."

    def __init__(self, unknown: list[str]) -> None:
        message = f"`include` may name only `archived` and `trashed`, not {', '.join(unknown)}."
        super().__init__(
            message, details=[FieldError(field="query.include", message=message, type="enum")]
        )
