"""The upstream client's network backend (app/generation/upstream/transport.py), on real sockets."""

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.generation.upstream.transport import AsyncioStream, build_http_client
from tests.support.fake_upstream import FakeUpstream
from tests.support.wait import wait_until

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


class OneAnswerServer:
    """Answers each connection's first request with `ok`, keeping the connection alive until the
    client closes it; with `drop_idle`, closes it right after the answer instead, as a server
    dropping idle keep-alive connections does."""

    def __init__(self, *, drop_idle: bool = False) -> None:
        self.drop_idle = drop_idle
        self.connections = 0
        self.closed = 0
        self.request_lines: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.request_lines.append(head.split(b"\r\n", 1)[0])
            writer.write(RESPONSE)
            await writer.drain()
            if not self.drop_idle:
                await reader.read()  # until the client closes the connection
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self.closed += 1


@pytest.fixture
async def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parley test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
async def tls_server(tls_files: tuple[Path, Path]) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    server = await asyncio.start_server(OneAnswerServer().handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/"
    finally:
        server.close()


async def test_upstream_requests_use_the_backend_of_the_setting(
    http_client: httpx.AsyncClient, upstream_transport: str, fake_upstream: FakeUpstream
) -> None:
    response = await http_client.get(f"{fake_upstream.base_url}/models")
    assert response.status_code == 200
    on_asyncio = isinstance(response.extensions["network_stream"], AsyncioStream)
    assert on_asyncio == (upstream_transport == "fast")


async def test_a_connection_the_server_dropped_while_idle_is_not_reused() -> None:
    server = OneAnswerServer(drop_idle=True)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/"
    try:
        async with build_http_client(connect_timeout=2.0, keepalive_expiry=30) as client:
            assert (await client.get(url)).text == "ok"
            await wait_until(lambda: server.closed == 1)  # our pool still holds it
            assert (await client.get(url)).text == "ok"
        assert server.connections == 2
    finally:
        listener.close()


async def test_https_with_a_trusted_certificate(
    tls_server: str, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))  # as an operator would
    async with build_http_client(connect_timeout=2.0) as client:
        response = await client.get(tls_server)
    assert response.text == "ok"
    assert response.extensions["network_stream"].get_extra_info("ssl_object") is not None


async def test_https_with_an_untrusted_certificate_cannot_connect(tls_server: str) -> None:
    async with build_http_client(connect_timeout=2.0) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(tls_server)


async def test_a_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = OneAnswerServer()
    listener = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        async with build_http_client(connect_timeout=2.0) as client:
            response = await client.get("http://upstream.invalid/v1/models")
        assert response.text == "ok"
        assert proxy.request_lines == [b"GET http://upstream.invalid/v1/models HTTP/1.1"]
    finally:
        listener.close()
