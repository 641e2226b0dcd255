"""Parley's SigV4 signatures for S3 equal botocore's (the AWS SDK's own signer) for the same
requests, so a real S3 accepts them (moto's server does not check signatures)."""

import hashlib
from datetime import UTC, datetime

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from app.files.storage import sigv4

NOW = datetime(2026, 11, 29, 12, 34, 56, tzinfo=UTC)
KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def botocore_clock(monkeypatch):
    """botocore signs with the current time; the reference signature needs NOW."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_a, **_k: NOW)


def botocore_headers(method: str, url: str, body: bytes, *, unsigned: bool) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body)
    if unsigned:
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(Credentials(KEY_ID, SECRET), "s3", REGION).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


CASES = [
    ("GET", "/bucket/files/0123abcd", {}, b""),
    ("PUT", "/bucket/files/0123abcd", {}, b"the file's bytes"),
    ("POST", "/bucket/files/0123abcd", {"uploads": ""}, b""),
    ("POST", "/bucket/files/0123abcd", {"uploadId": "xyz"}, b"<CompleteMultipartUpload/>"),
    ("DELETE", "/prefix/bucket/files/x y", {"uploadId": "a b+/=.~"}, b""),
]


@pytest.mark.parametrize(("method", "path", "query", "body"), CASES)
@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:9000", "https://s3.eu-west-1.amazonaws.com"]
)
def test_same_signature_as_botocore(method, path, query, body, endpoint):
    expected = botocore_headers(method, _url(endpoint, path, query), body, unsigned=False)
    ours = _sign(endpoint, method, path, query, hashlib.sha256(body).hexdigest())
    assert ours["x-amz-content-sha256"] == expected["x-amz-content-sha256"]
    assert ours["x-amz-date"] == expected["x-amz-date"] == "20261129T123456Z"
    assert ours["authorization"] == expected["authorization"]


def test_unsigned_payload_of_a_part():
    endpoint, path = "https://s3.eu-west-1.amazonaws.com", "/bucket/files/0123abcd"
    query = {"partNumber": "2", "uploadId": "VXBsb2FkIElE"}
    expected = botocore_headers("PUT", _url(endpoint, path, query), b"part", unsigned=True)
    ours = _sign(endpoint, "PUT", path, query, sigv4.UNSIGNED_PAYLOAD)
    assert expected["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert ours["authorization"] == expected["authorization"]


def _url(endpoint: str, path: str, query: dict[str, str]) -> str:
    suffix = f"?{sigv4.canonical_query(query)}" if query else ""
    return f"{endpoint}{sigv4.encode_path(path)}{suffix}"


def _sign(endpoint: str, method: str, path: str, query: dict[str, str], payload_hash: str):
    return sigv4.sign(
        method=method,
        host=endpoint.split("://", 1)[1],
        path=path,
        query=query,
        payload_hash=payload_hash,
        access_key=KEY_ID,
        secret_key=SECRET,
        region=REGION,
        now=NOW,
    )
