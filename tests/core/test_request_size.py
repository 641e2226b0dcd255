"""Request bodies and WebSocket messages past MAX_REQUEST_BYTES are refused without being read
whole: over a real connection, from Content-Length or as a chunked body passes the limit."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from app.main import create_app
from tests.support.api import assert_error, register
from tests.support.live import live_server
from tests.support.settings import make_settings
from tests.support.upstream_fixtures import new_chat

LIMIT = 64 * 1024
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(database, clean_db) -> Iterator[str]:
    with live_server(create_app(make_settings(database, max_request_bytes=LIMIT))) as url:
        yield url


async def raw_request(url: str, head: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode())
    await writer.drain()
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, json.loads(await reader.readexactly(length))


class TestRequestBodyLimit:
    async def test_a_declared_huge_body_is_refused_before_any_of_it_is_sent(self, server):
        reader, writer = await raw_request(
            server,
            "POST /api/auth/login HTTP/1.1\r\nHost: test\r\n"
            "Content-Type: application/json\r\nContent-Length: 250000000\r\n\r\n",
        )
        # Not one byte of the body is sent: the answer comes from the header alone.
        status, body = await read_response(reader)
        writer.close()
        assert status == 413
        assert body["error"]["code"] == "payload_too_large"
        assert str(LIMIT) in body["error"]["message"]

    async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(self, server):
        reader, writer = await raw_request(
            server,
            "POST /api/auth/register HTTP/1.1\r\nHost: test\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        chunk = b"x" * 16 * 1024
        sent = 0
        response = asyncio.ensure_future(read_response(reader))
        # Keep sending (up to 100 times the limit) until the server answers.
        while not response.done() and sent < 100 * LIMIT:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            try:
                await writer.drain()
            except ConnectionError:
                break
            sent += len(chunk)
            await asyncio.sleep(0)
        status, body = await response
        writer.close()
        assert status == 413
        assert body["error"]["code"] == "payload_too_large"
        # It answered while the client was still sending, not after reading everything.
        assert sent < 100 * LIMIT

    async def test_a_body_within_the_limit_is_served(self, server):
        async with httpx.AsyncClient(base_url=server) as http:
            user = await register(http)
            chat = await new_chat(http, user, title="t" * 200)
            too_big = await http.post(
                "/api/chats", json={"title": "x" * (LIMIT + 1)}, headers=user.headers
            )
        assert chat["title"] == "t" * 200
        assert_error(too_big, 413, "payload_too_large")


class TestWebSocketMessageLimit:
    async def test_a_message_past_the_limit_closes_the_socket(self, server):
        async with httpx.AsyncClient(base_url=server) as http:
            user = await register(http)
            chat = await new_chat(http, user)
        url = server.replace("http://", "ws://") + f"/api/chats/{chat['id']}/ws"
        async with websockets.connect(url, max_size=None) as socket:
            await socket.send(json.dumps({"type": "auth", "token": "x" * (LIMIT + 1)}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009

    def test_the_serve_commands_give_uvicorn_the_same_limit(self):
        for path in ("Makefile", "Dockerfile"):
            assert "--ws-max-size 1048576" in (ROOT / path).read_text(), path
