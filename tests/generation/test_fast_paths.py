"""The reply path with every fast path that leans on a library's internals turned off by its
setting (UPSTREAM_TRANSPORT=httpx, SQLITE_CONNECTION=aiosqlite, SSE_SENDER=sse-starlette): the
ways back must carry a whole reply, and none of the fast code may run. With the defaults, all of
it does (which shows the counting works)."""

import functools
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from app.core.sqlite import OneTripConnection
from app.generation.reply_events import EventStream
from app.generation.upstream.transport import AsyncioBackend
from tests.support.api import register
from tests.support.database import BACKEND, TestDatabase
from tests.support.fake_upstream import FakeUpstream
from tests.support.sse import collect_sse, names, text_of
from tests.support.upstream_fixtures import new_chat, parley_settings, running_parley

ALL_OFF = {
    "upstream_transport": "httpx",
    "sqlite_connection": "aiosqlite",
    "sse_sender": "sse-starlette",
}
ALL_ON = {"upstream_transport": "fast", "sqlite_connection": "fast", "sse_sender": "fast"}

# The one method each fast path cannot work without: (class, method name, what it belongs to).
FAST_CODE: list[tuple[type, str, str]] = [
    (AsyncioBackend, "connect_tcp", "upstream_transport"),
    (OneTripConnection, "run", "sqlite_connection"),
    (EventStream, "_send_with_timeout", "sse_sender"),
]


def count_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the calls of each fast path's method, by setting."""
    calls: Counter[str] = Counter()

    def counted(setting: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[setting] += 1
            return method(*args, **kwargs)  # the coroutine, for async methods

        return wrapper

    for owner, name, setting in FAST_CODE:
        monkeypatch.setattr(owner, name, counted(setting, getattr(owner, name)))
    return calls


@pytest.mark.parametrize("switches", [ALL_OFF, ALL_ON], ids=["all-off", "all-on"])
async def test_a_reply_streams_and_is_saved(
    database: TestDatabase,
    clean_db: object,
    fake_upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    switches: dict[str, str],
) -> None:
    calls = count_calls(monkeypatch)
    settings = parley_settings(database, fake_upstream, **switches)
    async with running_parley(settings) as parley:
        user = await register(parley.http)
        chat = await new_chat(parley.http, user)
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Hi there"},
            headers={**user.headers, "Accept": "text/event-stream"},
        ) as response:
            assert response.status_code == 200
            events = await collect_sse(response)
        assert names(events)[0] == "start" and names(events)[-2:] == ["usage", "done"]
        assert text_of(events) == "Hello, world!"

        listed = await parley.http.get(f"/api/chats/{chat['id']}/messages", headers=user.headers)
        saved = listed.json()["items"][-1]
        assert saved["role"] == "assistant" and saved["status"] == "complete"
        assert saved["content"] == "Hello, world!"
        assert saved["id"] == events[-1].data["id"]

    used = {setting for setting in switches if calls[setting]}
    expected = {"upstream_transport", "sse_sender"}
    if BACKEND == "sqlite":
        expected.add("sqlite_connection")
    assert used == (expected if switches is ALL_ON else set()), calls
