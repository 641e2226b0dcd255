"""Bytes and rows stay consistent whatever dies half-way: the client, the storage, the process."""

import asyncio
import hashlib
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from app.core.db import utcnow
from app.files.models import BlobState, PendingBlob
from tests.files import samples
from tests.files.conftest import (
    BACKENDS,
    FORM_TYPE,
    StorageProbe,
    eventually,
    file_store,
    form,
    rows,
    storage_settings,
    upload,
    uploaded,
)
from tests.support.api import assert_error, register
from tests.support.app import serving
from tests.support.processes import server
from tests.support.settings import make_settings
from tests.support.upstream_fixtures import running_parley

pytestmark = pytest.mark.parametrize("storage_backend", BACKENDS, indirect=True)


async def start_raw_upload(
    base_url: str, token: str, body: bytes, *, send: int
) -> asyncio.StreamWriter:
    """Sends an upload's headers (with the full Content-Length) and its first `send` bytes."""
    host, port = base_url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST /api/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {FORM_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body[:send])
    await writer.drain()
    return writer


class TestInterruptedUpload:
    async def test_a_client_that_goes_away_half_way_leaves_nothing(
        self, settings, stored, clean_db
    ):
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            body = form(b"half.txt", b"x" * 3_000_000)
            writer = await start_raw_upload(
                parley.base_url, user.access_token, body, send=len(body) // 2
            )
            # Under way: the reservation is written and bytes are on disk.
            await eventually(lambda: len(stored.spool()) == 1)
            assert await rows(clean_db) == (0, 1)
            writer.transport.abort()
            await eventually(lambda: not stored.spool() and not stored.objects(), timeout=15)
            await eventually(lambda: _no_rows(clean_db))
            # The server is fine, and the quota was given back.
            await uploaded(parley.http, user, "whole.txt", b"all of it")

    async def test_a_crashed_process_leaves_rows_that_the_next_start_sweeps(
        self, database, file_settings, clean_db
    ):
        stored = StorageProbe(make_settings(database, **file_settings))
        environment = {"database_url": database.url, **file_settings}
        async with server(environment) as process:
            async with _client(process.base_url) as http:
                user = await register(http)
            body = form(b"doomed.txt", b"y" * 3_000_000)
            writer = await start_raw_upload(
                process.base_url, user.access_token, body, send=len(body) // 2
            )
            await eventually(lambda: len(stored.spool()) == 1)
            process.signal(signal.SIGKILL)
            await process.wait(timeout=10)
            writer.transport.abort()
        # The crash left the reservation and the spool file behind.
        assert await rows(clean_db) == (0, 1)
        assert len(stored.spool()) == 1
        # The next start (here with a short upload timeout, so the leftovers count as stale
        # at once) removes both.
        restarted = make_settings(database, file_upload_timeout_seconds=0.01, **file_settings)
        await asyncio.sleep(0.05)  # older than twice that timeout
        async with serving(restarted):
            assert await rows(clean_db) == (0, 0)
            assert stored.spool() == [] and stored.objects() == set()


async def _no_rows(engine) -> bool:
    return await rows(engine) == (0, 0)


def _client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=30)


class TestFailedWrite:
    async def test_a_storage_that_refuses_the_bytes_leaves_nothing(
        self, database, clean_db, storage_backend, tmp_path, request
    ):
        root = tmp_path / "files"
        if storage_backend == "s3":
            values = storage_settings("s3", root, request, bucket="no-such-bucket")
        else:
            values = storage_settings("local", root, request)
            # Every shard directory an object could go to is a file: the rename fails.
            root.mkdir(parents=True)
            for shard in range(256):
                (root / f"{shard:02x}").write_bytes(b"")
        settings = make_settings(database, **values)
        async with serving(settings) as (_app, client):
            user = await register(client)
            response = await upload(client, user, "a.png", samples.image("PNG"))
            assert_error(response, 503, "storage_unavailable")
            assert await rows(clean_db) == (0, 0)
            probe = StorageProbe(settings)
            assert probe.spool() == []
            if storage_backend == "local":
                assert probe.objects() == set()


class TestSweep:
    async def test_removes_bytes_of_a_dead_upload_and_of_deleted_files(self, app, stored, clean_db):
        store = file_store(app)
        dead, deleted, alive = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        long_ago = utcnow() - timedelta(days=1)
        async with store.db.transaction() as session:
            session.add_all(
                [
                    PendingBlob(
                        storage_key=dead,
                        state=BlobState.UPLOADING,
                        reserved_bytes=10,
                        created_at=long_ago,
                    ),
                    PendingBlob(
                        storage_key=deleted,
                        state=BlobState.DELETING,
                        reserved_bytes=0,
                        created_at=utcnow(),
                    ),
                    # An upload in flight on another worker: not touched.
                    PendingBlob(
                        storage_key=alive,
                        state=BlobState.UPLOADING,
                        reserved_bytes=10,
                        created_at=utcnow(),
                    ),
                ]
            )
        for key in (dead, deleted, alive):
            await _store_bytes(store, key, b"leftover")
        assert stored.objects() == {dead.hex, deleted.hex, alive.hex}
        assert await store.sweep() == 2
        assert stored.objects() == {alive.hex}
        assert await rows(clean_db) == (0, 1)

    async def test_leaves_stored_files_alone(self, client, user, app, stored):
        await uploaded(client, user, "kept.txt", b"kept")
        assert await file_store(app).sweep() == 0
        assert len(stored.objects()) == 1


async def _store_bytes(store, key: uuid.UUID, content: bytes) -> None:
    spool: Path = store.storage.spool_path(key)
    spool.write_bytes(content)
    await store.storage.put(
        key, spool, size=len(content), sha256=hashlib.sha256(content).hexdigest()
    )
    spool.unlink(missing_ok=True)
