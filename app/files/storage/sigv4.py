"""AWS Signature Version 4 for S3 requests (path-style), as the S3 API reference specifies.

Only what Parley's S3 backend sends is covered: the host, x-amz-date and x-amz-content-sha256
headers are signed; the payload hash is the body's SHA-256, or UNSIGNED-PAYLOAD for parts.
"""

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _encode(value: str) -> str:
    """URI-encodes every byte except the unreserved characters."""
    return quote(value, safe="-_.~")


def encode_path(path: str) -> str:
    """A decoded path as S3 wants it on the wire and in the signature (encoded once)."""
    return quote(path, safe="-_.~/")


def canonical_query(params: Mapping[str, str]) -> str:
    """The query string, sorted and encoded as SigV4 wants it (also what is sent)."""
    return "&".join(f"{_encode(name)}={_encode(value)}" for name, value in sorted(params.items()))


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret_key}".encode(), day)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    payload_hash: str,
    access_key: str,
    secret_key: str,
    region: str,
    now: datetime,
    service: str = "s3",
) -> dict[str, str]:
    """The headers that authenticate the request: x-amz-date, x-amz-content-sha256 and
    Authorization. `path` is the decoded path (S3 encodes it once); `now` is UTC."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed_headers = ";".join(sorted(headers))
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in sorted(headers))
    canonical_request = "\n".join(
        (
            method,
            encode_path(path),
            canonical_query(query),
            canonical_headers,
            signed_headers,
            payload_hash,
        )
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        (ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest())
    )
    signature = hmac.new(
        signing_key(secret_key, day, region, service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    return {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_hash,
        "authorization": (
            f"{ALGORITHM} Credential={access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        ),
    }
