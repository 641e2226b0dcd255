"""Fixtures for the file store: both storage backends (a local directory, and S3 served by moto
on a loopback port, as the fake upstream stands in for a model server), uploads, and probes
that look at what is really in storage and in the database."""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastapi import FastAPI
from moto.server import ThreadedMotoServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.files.models import File, PendingBlob
from app.files.store import FileStore
from tests.support.api import SignedInUser
from tests.support.database import TestDatabase
from tests.support.settings import make_settings

BACKENDS = ["local", "s3"]
S3_CREDENTIALS = {"s3_access_key_id": "parley-test", "s3_secret_access_key": "parley-secret"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_CREDENTIALS["s3_access_key_id"],
        aws_secret_access_key=S3_CREDENTIALS["s3_secret_access_key"],
    )


@pytest.fixture
def storage_backend(request: pytest.FixtureRequest) -> str:
    """ "local" unless a test parametrizes it (indirect) with BACKENDS."""
    return str(getattr(request, "param", "local"))


def storage_settings(
    backend: str, root: Path, request: pytest.FixtureRequest, *, bucket: str | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {"file_storage_dir": str(root)}
    if backend == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        if bucket is None:
            bucket = f"parley-{uuid.uuid4().hex[:16]}"
            s3_client(endpoint).create_bucket(Bucket=bucket)
        values.update(
            file_storage="s3",
            s3_bucket=bucket,
            s3_endpoint_url=endpoint,
            s3_part_bytes=5 * 1024 * 1024,
            **S3_CREDENTIALS,
        )
    return values


@pytest.fixture
def file_settings(
    storage_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """Settings overrides for this test's storage (a fresh directory or bucket)."""
    return storage_settings(storage_backend, tmp_path / "files", request)


@pytest.fixture
def settings(
    database: TestDatabase, clean_db: AsyncEngine, file_settings: dict[str, Any]
) -> Settings:
    return make_settings(database, **file_settings)


@dataclass
class StorageProbe:
    """What is really stored, looked at from outside Parley (the directory, or S3's API)."""

    settings: Settings

    def objects(self) -> set[str]:
        if self.settings.file_storage == "s3":
            listing = s3_client(str(self.settings.s3_endpoint_url)).list_objects_v2(
                Bucket=self.settings.s3_bucket
            )
            return {item["Key"].rsplit("/", 1)[-1] for item in listing.get("Contents", [])}
        root = Path(self.settings.file_storage_dir)
        return {
            path.name
            for path in root.glob("*/*")
            if path.is_file() and path.parent.name != ".incoming"
        }

    def read(self, key: uuid.UUID) -> bytes:
        if self.settings.file_storage == "s3":
            answer = s3_client(str(self.settings.s3_endpoint_url)).get_object(
                Bucket=self.settings.s3_bucket, Key=f"files/{key.hex}"
            )
            return bytes(answer["Body"].read())
        return (Path(self.settings.file_storage_dir) / key.hex[:2] / key.hex).read_bytes()

    def spool(self) -> list[Path]:
        spool = Path(self.settings.file_storage_dir) / ".incoming"
        return sorted(spool.iterdir()) if spool.exists() else []


@pytest.fixture
def stored(settings: Settings) -> StorageProbe:
    return StorageProbe(settings)


async def rows(engine: AsyncEngine) -> tuple[int, int]:
    """(file rows, pending blob rows) in the database."""
    async with engine.connect() as connection:
        files = await connection.scalar(select(func.count()).select_from(File))
        pending = await connection.scalar(select(func.count()).select_from(PendingBlob))
    return int(files or 0), int(pending or 0)


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, timeout: float = 15.0
) -> None:
    """Waits until `check()` is true (polling); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        await asyncio.sleep(0.02)


def file_store(app: FastAPI) -> FileStore:
    store: FileStore = app.state.files
    return store


async def purged(app: FastAPI) -> None:
    """Waits for the deletions the app scheduled in the background."""
    await file_store(app).jobs.drain()


async def upload(
    client: httpx.AsyncClient,
    user: SignedInUser,
    name: str,
    content: bytes,
    *,
    content_type: str = "application/octet-stream",
) -> httpx.Response:
    return await client.post(
        "/api/files", files={"file": (name, content, content_type)}, headers=user.headers
    )


async def uploaded(
    client: httpx.AsyncClient, user: SignedInUser, name: str, content: bytes
) -> dict[str, Any]:
    response = await upload(client, user, name, content)
    assert response.status_code == 201, response.text
    return dict(response.json())


BOUNDARY = "parley-test-boundary"


def form(filename: bytes, content: bytes, *, field: bytes = b"file", close: bool = True) -> bytes:
    """A multipart/form-data body made by hand (for names no client library would send)."""
    body = (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="'
        + field
        + b'"; filename="'
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + content
    )
    if close:
        body += f"\r\n--{BOUNDARY}--\r\n".encode()
    return body


FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
