"""What Parley's fast paths assume of the libraries under them.

Each fast path leans on a library's private API, so pyproject.toml pins those libraries to the
range they were tested with. When a pin is moved, these tests say which assumption an upgrade
broke and which module relies on it, instead of the app failing on its first query or, worse,
quietly falling back to the slow path:

- app/core/sqlite.py: aiosqlite's Connection internals, driven by SQLAlchemy's aiosqlite adapter
- app/generation/reply_events.py: sse-starlette's `_send_with_timeout`
- app/generation/upstream/transport.py: httpx's `AsyncHTTPTransport._pool`, httpcore's backends
- app/core/middleware.py: the matched route Starlette leaves in `scope["route"]`
"""

import asyncio
import inspect
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from app.core import sqlite as one_trip
from app.core.config import Settings
from app.core.db import create_engine
from app.generation.reply_events import EventStream
from app.generation.upstream.transport import AsyncioBackend, AsyncioStream, build_http_client


def broken(library: str, assumption: str, module: str) -> str:
    return (
        f"{library} {version(library)}: {assumption}. {module} relies on this; adapt it to the "
        f"new version or keep {library} in the range pinned in pyproject.toml."
    )


@contextmanager
def relied_on(library: str, assumption: str, module: str) -> Iterator[None]:
    """Turns the errors a changed private API raises into a failure that says what changed."""
    try:
        yield
    except (AttributeError, TypeError) as exc:
        pytest.fail(broken(library, f"{assumption} ({type(exc).__name__}: {exc})", module))


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# --- app/core/sqlite.py ------------------------------------------------------------------------


class TestOneTripSQLite:
    async def test_aiosqlite_runs_work_on_its_own_thread(self) -> None:
        where = "app/core/sqlite.py (OneTripConnection)"
        assert "iter_chunk_size" in parameters(one_trip.aiosqlite.Connection.__init__), broken(
            "aiosqlite",
            "Connection(connector, iter_chunk_size) is no longer its constructor",
            where,
        )
        with relied_on("aiosqlite", "OneTripConnection can no longer be opened", where):
            connection = await one_trip.connect(":memory:")
        try:
            worker = getattr(connection, "_thread", None)
            assert isinstance(worker, threading.Thread), broken(
                "aiosqlite", "a Connection no longer keeps its worker thread in `_thread`", where
            )
            assert worker.daemon
            assert isinstance(connection._conn, sqlite3.Connection), broken(
                "aiosqlite", "`Connection._conn` is no longer the sqlite3 connection", where
            )
            ran_on: list[threading.Thread] = []
            outcome = await connection._execute(lambda: ran_on.append(threading.current_thread()))
            assert outcome is None and ran_on == [worker], broken(
                "aiosqlite",
                "`Connection._execute(fn)` no longer runs fn on the connection's thread",
                where,
            )
        finally:
            await connection.close()

    async def test_sqlalchemy_drives_the_prefetching_cursor(self, tmp_path: Path) -> None:
        where = "app/core/sqlite.py (PrefetchingCursor) and app/core/db.py"
        settings = Settings(
            _env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'assumptions.db'}"
        )
        engine = create_engine(settings)
        sent: list[str] = []
        adapter = (
            "its aiosqlite adapter no longer drives PrefetchingCursor as 2.1 does (connection."
            "cursor() called without await, then the cursor's execute/fetchall/close awaited)"
        )
        try:
            with relied_on("sqlalchemy", adapter, where):
                async with engine.begin() as connection:
                    raw = await connection.get_raw_connection()
                    driver = raw.driver_connection
                    assert isinstance(driver, one_trip.OneTripConnection), broken(
                        "sqlalchemy",
                        "the aiosqlite dialect no longer connects through `async_creator`",
                        where,
                    )
                    driver._conn.set_trace_callback(sent.append)
                    await connection.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, x)"))
                    inserted = await connection.execute(
                        text("INSERT INTO item (x) VALUES (:x)"), [{"x": "a"}, {"x": "b"}]
                    )
                    rows = (await connection.execute(text("SELECT x FROM item ORDER BY id"))).all()
        finally:
            await engine.dispose()
        assert inserted.rowcount == 2 and [row.x for row in rows] == ["a", "b"], broken(
            "sqlalchemy", "rows or row counts read through PrefetchingCursor came back wrong", where
        )
        # The transaction's BEGIN went out with its first statement (the "begin" event).
        assert sent[0] == "BEGIN IMMEDIATE", broken(
            "sqlalchemy", f"the transaction did not start with BEGIN IMMEDIATE: {sent[:3]}", where
        )


# --- app/generation/reply_events.py ---------------------------------------------------------------


class RecordingStream(EventStream):
    """Notes which messages reach `_send_with_timeout`, the hook EventStream overrides."""

    hooked: list[dict[str, Any]]

    async def _send_with_timeout(self, send: Send, message: Any) -> None:
        self.hooked.append(dict(message))
        await super()._send_with_timeout(send, message)


class TestEventStream:
    async def test_every_frame_goes_through_send_with_timeout(self) -> None:
        where = "app/generation/reply_events.py (EventStream)"
        hook = getattr(EventSourceResponse, "_send_with_timeout", None)
        assert inspect.iscoroutinefunction(hook), broken(
            "sse-starlette",
            "EventSourceResponse has no `_send_with_timeout` coroutine, so EventStream's "
            "override of it does nothing",
            where,
        )
        assert parameters(hook) == ["self", "send", "message"], broken(
            "sse-starlette", f"`_send_with_timeout` takes {parameters(hook)}", where
        )

        frames = [b"event: delta\r\ndata: {}\r\n\r\n", b"event: done\r\ndata: {}\r\n\r\n"]

        async def body() -> AsyncIterator[bytes]:
            for frame in frames:
                yield frame

        response = RecordingStream(body(), ping=600)
        response.hooked = []
        sent: list[dict[str, Any]] = []
        never = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await never.wait()
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(dict(message))

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await asyncio.wait_for(response(scope, receive, send), timeout=5)

        bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m["body"]]
        assert bodies == frames, broken(
            "sse-starlette", "bytes from the body iterator are no longer sent as they are", where
        )
        hooked = [m["body"] for m in response.hooked if m["type"] == "http.response.body"]
        assert hooked[: len(frames)] == frames, broken(
            "sse-starlette", "frames are no longer sent through `_send_with_timeout`", where
        )


# --- app/generation/upstream/transport.py ---------------------------------------------------------


class RecordingBackend(AsyncioBackend):
    """AsyncioBackend whose streams note what httpcore asks of them."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(host, port, timeout, local_address, socket_options)
        assert isinstance(stream, AsyncioStream)
        asked = self.asked

        class Recording(AsyncioStream):
            def get_extra_info(self, info: str) -> Any:
                asked.append(info)
                return super().get_extra_info(info)

        return Recording(stream._reader, stream._writer)


@pytest.fixture
async def ok_server() -> AsyncIterator[str]:
    """Answers every request on a connection with `ok`, keeping the connection open."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()


class TestUpstreamTransport:
    where = "app/generation/upstream/transport.py (UpstreamTransport)"

    async def test_httpx_sends_through_the_transports_pool(self, ok_server: str) -> None:
        pool = getattr(httpx.AsyncHTTPTransport(), "_pool", None)
        assert isinstance(pool, httpcore.AsyncConnectionPool), broken(
            "httpx", "AsyncHTTPTransport no longer keeps its connection pool in `_pool`", self.where
        )
        async with build_http_client(connect_timeout=2.0, transport="fast") as client:
            response = await client.get(ok_server)
        assert isinstance(response.extensions["network_stream"], AsyncioStream), broken(
            "httpx",
            "AsyncHTTPTransport no longer sends requests through `_pool`, so the fast backend "
            "is not used (set UPSTREAM_TRANSPORT=httpx until this is fixed)",
            self.where,
        )

    def test_httpx_builds_ssl_contexts_from_the_environment(self) -> None:
        assert "trust_env" in parameters(httpx.create_ssl_context), broken(
            "httpx", "create_ssl_context() no longer takes trust_env", self.where
        )

    def test_httpcore_pools_take_a_network_backend(self) -> None:
        wanted = {
            "ssl_context",
            "max_connections",
            "max_keepalive_connections",
            "keepalive_expiry",
            "http1",
            "http2",
            "network_backend",
        }
        missing = wanted - set(parameters(httpcore.AsyncConnectionPool.__init__))
        assert not missing, broken(
            "httpcore", f"AsyncConnectionPool() no longer takes {sorted(missing)}", self.where
        )

    @pytest.mark.parametrize(
        ("base", "ours", "methods"),
        [
            (
                httpcore.AsyncNetworkBackend,
                AsyncioBackend,
                ["connect_tcp", "connect_unix_socket", "sleep"],
            ),
            (
                httpcore.AsyncNetworkStream,
                AsyncioStream,
                ["read", "write", "aclose", "start_tls", "get_extra_info"],
            ),
        ],
    )
    def test_the_network_backend_interface_is_unchanged(
        self, base: type, ours: type, methods: list[str]
    ) -> None:
        for method in methods:
            expected, actual = parameters(getattr(base, method)), parameters(getattr(ours, method))
            assert actual == expected, broken(
                "httpcore", f"{base.__name__}.{method} now takes {expected}", self.where
            )

    async def test_httpcore_asks_idle_connections_whether_they_are_readable(
        self, ok_server: str
    ) -> None:
        backend = RecordingBackend()
        async with httpcore.AsyncConnectionPool(network_backend=backend) as pool:
            for _ in range(2):
                response = await pool.request("GET", ok_server)
                assert response.content == b"ok"
        assert "is_readable" in backend.asked, broken(
            "httpcore",
            "pooled connections are no longer checked with get_extra_info('is_readable'), which "
            "AsyncioStream answers from its reader",
            self.where,
        )


# --- app/core/middleware.py --------------------------------------------------------------------


async def test_the_matched_route_is_left_in_the_scope() -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    seen: list[Scope] = []

    async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=recorder)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/items/7")).status_code == 200
    route = seen[0].get("route")
    assert getattr(route, "path", None) == "/items/{item_id}", broken(
        "starlette",
        'the router no longer records the matched route in scope["route"], which labels '
        "requests in the metrics",
        "app/core/middleware.py (RequestContextMiddleware)",
    )
