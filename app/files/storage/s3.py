"""S3-compatible object storage (AWS S3, MinIO, Ceph, R2, ...), over httpx with SigV4.

Objects are `files/<key>` in the bucket, addressed path-style (`<endpoint>/<bucket>/<object>`),
which every S3-compatible server accepts. A file up to S3_PART_BYTES goes up in one PUT whose
signature covers its SHA-256 (computed while it was received), so the server rejects bytes
damaged on the way; larger ones as a multipart upload, part by part from the spool file, and
the upload is aborted if any part fails. Nothing is held in memory beyond one chunk.

Signed here rather than through aiobotocore: Parley needs seven S3 calls, all streamed, and
httpx already does the HTTP; aiobotocore would add aiohttp and botocore (a second HTTP stack
and some 35 MB installed) and pins botocore so tightly that it fights boto3's pins. The signer is
checked against botocore's own in tests/files/test_sigv4.py.
"""

import asyncio
import hashlib
import logging
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx

from app.core.db import utcnow
from app.files.storage import sigv4
from app.files.storage.base import BlobNotFound, BlobStream, Storage, StorageError, iter_file

logger = logging.getLogger("parley.files")

# Requests that fail for transport reasons or with a 5xx (S3's "SlowDown", "InternalError")
# are tried this many times in all; every S3 call Parley makes is safe to repeat.
ATTEMPTS = 3
RETRY_DELAY = 0.25
OBJECT_PREFIX = "files/"


class S3Blob(BlobStream):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        length = response.headers.get("content-length")
        self.size = int(length) if length and length.isdigit() else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise StorageError(f"reading from S3 failed: {exc!r}") from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class S3Storage(Storage):
    name = "s3"

    def __init__(
        self,
        *,
        spool_dir: Path,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        part_bytes: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(spool_dir)
        self.bucket = bucket
        self.endpoint = httpx.URL(endpoint_url or f"https://s3.{region}.amazonaws.com")
        self.region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self.part_bytes = part_bytes
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        await super().start()
        self._http = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(60.0, connect=10.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- the interface ---------------------------------------------------------------------

    async def put(self, key: uuid.UUID, source: Path, *, size: int, sha256: str) -> None:
        if size <= self.part_bytes:
            await self._request(
                "PUT",
                key,
                content=lambda: iter_file(source),
                size=size,
                payload_hash=sha256,
            )
        else:
            await self._put_multipart(key, source, size)

    async def open(self, key: uuid.UUID) -> BlobStream:
        response = await self._request("GET", key, stream=True, missing_ok=True)
        if response.status_code == 404:
            await response.aclose()
            raise BlobNotFound(str(key))
        return S3Blob(response)

    async def delete(self, key: uuid.UUID) -> None:
        await self._request("DELETE", key, missing_ok=True)

    # --- multipart ---------------------------------------------------------------------------

    async def _put_multipart(self, key: uuid.UUID, source: Path, size: int) -> None:
        created = await self._request("POST", key, query={"uploads": ""})
        upload_id = _xml_text(created.content, "UploadId")
        try:
            etags: list[str] = []
            for offset in range(0, size, self.part_bytes):
                length = min(self.part_bytes, size - offset)
                part = await self._request(
                    "PUT",
                    key,
                    query={"partNumber": str(len(etags) + 1), "uploadId": upload_id},
                    content=lambda offset=offset, length=length: iter_file(
                        source, offset=offset, length=length
                    ),
                    size=length,
                    payload_hash=sigv4.UNSIGNED_PAYLOAD,
                )
                etags.append(part.headers.get("etag", ""))
            body = "".join(
                f"<Part><PartNumber>{number}</PartNumber><ETag>{escape(etag)}</ETag></Part>"
                for number, etag in enumerate(etags, start=1)
            )
            document = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
            completed = await self._request(
                "POST",
                key,
                query={"uploadId": upload_id},
                content=lambda: _once(document),
                size=len(document),
                payload_hash=hashlib.sha256(document).hexdigest(),
            )
            # S3 may answer 200 and still report an error in the body.
            if b"<Error>" in completed.content:
                raise StorageError(f"S3 refused to complete the upload of {key}")
        except BaseException:
            try:
                await asyncio.shield(
                    self._request("DELETE", key, query={"uploadId": upload_id}, missing_ok=True)
                )
            except Exception:
                logger.warning("could not abort an S3 multipart upload", exc_info=True)
            raise

    # --- requests ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        key: uuid.UUID,
        *,
        query: Mapping[str, str] | None = None,
        content: Any = None,
        size: int = 0,
        payload_hash: str = sigv4.EMPTY_SHA256,
        stream: bool = False,
        missing_ok: bool = False,
    ) -> httpx.Response:
        """One signed request, repeated on transport errors and 5xx answers. `content` is a
        function that returns the body's chunks afresh for every attempt."""
        if self._http is None:
            raise StorageError("the S3 storage is not started")
        query = query or {}
        path = f"{self.endpoint.path.rstrip('/')}/{self.bucket}/{OBJECT_PREFIX}{key.hex}"
        raw_path = sigv4.encode_path(path) + _query_suffix(query)
        url = self.endpoint.copy_with(raw_path=raw_path.encode())
        last_error: Exception | None = None
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_DELAY * attempt)
            headers = sigv4.sign(
                method=method,
                host=url.netloc.decode("ascii"),
                path=path,
                query=query,
                payload_hash=payload_hash,
                access_key=self._access_key_id,
                secret_key=self._secret_access_key,
                region=self.region,
                now=utcnow(),
            )
            if content is not None:
                headers["content-length"] = str(size)
            request = self._http.build_request(
                method, url, headers=headers, content=content() if content else None
            )
            try:
                response = await self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                last_error = exc
                continue
            if response.status_code < 300 or (missing_ok and response.status_code == 404):
                if not stream:
                    await response.aread()
                return response
            body = await response.aread()
            await response.aclose()
            last_error = StorageError(
                f"S3 answered {response.status_code} to {method}: {_error_code(body)}"
            )
            if response.status_code < 500:
                break
        raise StorageError(f"S3 request failed: {last_error!r}") from last_error


def _query_suffix(query: Mapping[str, str]) -> str:
    return f"?{sigv4.canonical_query(query)}" if query else ""


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _xml_text(document: bytes, tag: str) -> str:
    try:
        root = ET.fromstring(document)  # noqa: S314 - see the import
    except ET.ParseError as exc:
        raise StorageError(f"S3 answered malformed XML: {exc}") from exc
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == tag and element.text:
            return element.text
    raise StorageError(f"S3's answer has no {tag}")


def _error_code(body: bytes) -> str:
    try:
        return _xml_text(body, "Code")
    except StorageError:
        return body[:200].decode("utf-8", "replace")
