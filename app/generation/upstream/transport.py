"""The one HTTP client Parley shares for every upstream call, and the sockets under it.

`build_http_client` makes it: a pool sized for many concurrent streams, keep-alive below the
upstream's own idle timeout, no read timeout (the provider bounds every read itself).

Under it, with UPSTREAM_TRANSPORT=fast (the default), httpcore's sockets run on plain asyncio;
UPSTREAM_TRANSPORT=httpx keeps httpx's stock transport instead. httpcore's default backend goes
through anyio, which opens a cancel scope (and asks sniffio which event loop is running, twice)
for every read and write, whether or not the read has a timeout. On a relayed reply that is one
read per token: measured with bench/relay.py, about a sixth of the CPU Parley spends relaying a
token. This backend does the same job on asyncio streams and only arms a timer when httpcore asks
for a timeout (the upstream client asks for none while reading; its own first-token and idle
deadlines bound every read).

It follows httpcore's documented network-backend interface (`httpcore.AsyncNetworkBackend`) and
raises httpcore's exceptions as its own backends do, so httpx maps them to its usual errors.
httpx has no parameter for a network backend yet (encode/httpx#3180), so `UpstreamTransport` is
httpx's own transport with the connection pool built on this backend.

One difference from anyio: connecting tries a host's addresses one after another (uvloop, which
uvicorn runs on, has no Happy Eyeballs), where anyio races IPv6 against IPv4. The system's
address order already puts IPv4 first on a machine without IPv6 connectivity; only a machine
with an IPv6 address but no working IPv6 route to the upstream would wait out the connect
timeout on its IPv6 address. Point LLM_BASE_URL at an IPv4 address or name there.
"""

# httpcore's interface passes timeouts as arguments.
# ruff: noqa: ASYNC109

import asyncio
import ssl
from collections.abc import Coroutine, Iterable
from typing import Any, Literal

import httpcore
import httpx
from httpcore import SOCKET_OPTION

UpstreamTransportName = Literal["fast", "httpx"]


def build_http_client(
    *,
    max_connections: int = 1000,
    connect_timeout: float,
    keepalive_expiry: float = 3.0,
    transport: UpstreamTransportName = "fast",
) -> httpx.AsyncClient:
    """The one HTTP client the app shares for every upstream call; the caller closes it.

    `transport` (setting UPSTREAM_TRANSPORT): "fast" makes connections with Parley's asyncio
    network backend, "httpx" with httpx's own (anyio), which behaves the same at more CPU."""
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    # Every streaming reply holds a connection for its whole length, so httpx's default of 100
    # would queue the 101st concurrent chat; keep-alive spares a handshake per message.
    # An idle connection is dropped before the server drops it: vLLM (uvicorn) closes idle
    # ones after 5 s, httpx's default, and a request sent on a connection just as the server
    # closes it fails before any answer (seen in bench/relay.py at 500 streams, twice in a
    # row for one reply: both attempts picked connections that were closing).
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=keepalive_expiry,
    )
    # "fast": requests go out on plain-asyncio sockets (AsyncioBackend below), mounted for
    # every URL rather than as the client's transport, so proxies from the environment
    # (HTTPS_PROXY, NO_PROXY), which httpx mounts more specifically, still apply.
    mounts = {"all://": UpstreamTransport(limits=limits)} if transport == "fast" else None
    return httpx.AsyncClient(
        mounts=mounts,
        limits=limits,
        # No read timeout: the providers bound every read with their own first-token and idle
        # deadlines, which (unlike a socket read timeout) SSE keep-alive comments do not reset.
        timeout=httpx.Timeout(connect=connect_timeout, read=None, write=None, pool=connect_timeout),
        http1=True,
        http2=False,
        follow_redirects=False,
    )


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:
                return await self._reader.read(max_bytes)
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                if self._writer.is_closing():
                    raise ConnectionResetError("the connection is closed")
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.WriteError(exc) from exc

    async def aclose(self) -> None:
        # As anyio does: close (flushing what is buffered), give the loop one turn to do it,
        # then make sure the socket is gone without waiting on a peer that may never answer
        # (a TLS close_notify, say).
        transport = self._writer.transport
        if not transport.is_closing():
            transport.close()
            await asyncio.sleep(0)
        transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(exc) from exc
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(exc) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks this of idle pooled connections: readable then means the server
            # closed it. The transport reads as soon as data or an EOF arrives, so the answer
            # is in the reader, not the socket.
            return (
                self._reader.at_eof()
                or self._reader.exception() is not None
                or self._writer.is_closing()
            )
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        # asyncio sets TCP_NODELAY on TCP connections, as anyio does.
        connecting = asyncio.open_connection(host, port, local_addr=local)
        return await _connect(connecting, timeout, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await _connect(asyncio.open_unix_connection(path), timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect(
    connecting: Coroutine[Any, Any, tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    timeout: float | None,
    socket_options: Iterable[SOCKET_OPTION] | None,
) -> AsyncioStream:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await connecting
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(exc) from exc
    except OSError as exc:
        raise httpcore.ConnectError(exc) from exc
    stream = AsyncioStream(reader, writer)
    if socket_options:
        sock = stream.get_extra_info("socket")
        for option in socket_options:
            sock.setsockopt(*option)
    return stream


class UpstreamTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP/1.1 transport, its connections made by `AsyncioBackend`."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        # What httpx builds for a transport without a proxy, plus the backend. The SSL context
        # honours SSL_CERT_FILE and SSL_CERT_DIR as httpx's default does.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=True),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )
