"""A real uvicorn server on a loopback port, for tests whose behaviour needs a real connection."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from tests.support.wait import wait_until_blocking


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(
    app: ASGIApp, *, startup_timeout: float = 15.0, port: int | None = None
) -> Iterator[str]:
    """Serves `app` in a thread with its own event loop; yields its base URL. `port` (default: a
    free one) is for apps that must know their own address before they start."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    wait_until_blocking(lambda: server.started or not thread.is_alive(), timeout=startup_timeout)
    if not server.started:
        raise RuntimeError("the test server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
