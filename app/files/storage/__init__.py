"""Where the bytes of files live: one small interface, a local and an S3-compatible backend."""

from pathlib import Path

from app.core.config import Settings
from app.files.storage.base import BlobNotFound, BlobStream, Storage, StorageError
from app.files.storage.local import LocalStorage
from app.files.storage.s3 import S3Storage


def build_storage(settings: Settings) -> Storage:
    root = Path(settings.file_storage_dir)
    if settings.file_storage == "s3":
        assert settings.s3_bucket and settings.s3_access_key_id and settings.s3_secret_access_key
        return S3Storage(
            spool_dir=root.resolve() / ".incoming",
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key.get_secret_value(),
            part_bytes=settings.s3_part_bytes,
        )
    return LocalStorage(root)


__all__ = ["BlobNotFound", "BlobStream", "Storage", "StorageError", "build_storage"]
