"""Rejoining replies across workers: two real server processes sharing Redis and the database."""

import asyncio
import json
import uuid

import httpx

from app.core.shared_redis import connect_redis
from app.generation import reply_events
from app.generation.reply_buffer import RedisReplyBuffer
from app.generation.reply_events import ReplyEvent
from tests.generation.test_resume import NO_TITLES, SSE
from tests.ops.test_processes import redis_url  # noqa: F401 - the fixture
from tests.support.api import register
from tests.support.processes import server
from tests.support.sse import collect_sse, iter_sse, text_of
from tests.support.upstream_fixtures import new_chat
from tests.support.wait import wait_until


def _settings(database, fake, redis, **extra):
    return {
        "database_url": database.url,
        "llm_base_url": fake.base_url,
        "llm_model": "fake-model",
        "redis_url": redis,
        "stream_checkpoint_seconds": 0.25,
        # Rate-limit counters in the shared Redis belong to this test alone.
        "rate_limit_key_prefix": f"parley-test-{uuid.uuid4().hex}",
        **NO_TITLES,
        **extra,
    }


async def _drop_after(http, user, chat, deltas, headers=None):
    received = []
    async with http.stream(
        "POST",
        f"/api/chats/{chat['id']}/messages",
        json={"content": "Long one"},
        headers={**user.headers, **SSE, **(headers or {})},
    ) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        async for event in iter_sse(response):
            received.append(event)
            if len([e for e in received if e.event == "delta"]) == deltas:
                break
    assert received[-1].event == "delta"
    return received


async def _saved(http, user, chat):
    async def settled():
        response = await http.get(f"/api/chats/{chat['id']}/messages", headers=user.headers)
        reply = response.json()["items"][-1]
        return reply if reply["status"] != "streaming" else None

    return await wait_until(settled, timeout=15, interval=0.1)


class TestRejoinOnAnotherWorker:
    async def test_the_other_worker_sends_exactly_the_missed_deltas(
        self,
        database,
        clean_db,
        fake_upstream,
        redis_url,  # noqa: F811
    ):
        fake_upstream.state.tokens = 150
        fake_upstream.state.token_delay = 0.01
        settings = _settings(database, fake_upstream, redis_url)
        async with (
            server(settings) as first,
            server(settings) as second,
            httpx.AsyncClient(base_url=first.base_url, timeout=20) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=20) as two,
        ):
            user = await register(one)
            chat = await new_chat(one, user)
            before = await _drop_after(one, user, chat, 10)
            message_id = before[0].data["assistant_message_id"]
            async with two.stream(
                "GET",
                f"/api/chats/{chat['id']}/messages/{message_id}/stream",
                headers={**user.headers, "Last-Event-ID": before[-1].id},
            ) as response:
                after = await collect_sse(response)
            saved = await _saved(two, user, chat)
        # Either worker may join the deltas a client missed or fell behind on into one,
        # numbered as its last part: ids only grow, and nothing is sent twice or skipped.
        ids = [int(e.id or 0) for e in after]  # an event without an id fails the comparison
        assert ids == sorted(set(ids)) and ids[0] > int(before[-1].id or 0)
        assert after[-1].event == "done" and after[-1].data["status"] == "complete"
        assert text_of(before) + text_of(after) == saved["content"]
        assert saved["content"] == "".join(f"tok{i} " for i in range(150))
        assert len(fake_upstream.state.requests) == 1
        assert fake_upstream.state.disconnects == 0

    async def test_a_rejoin_within_the_grace_on_another_worker_keeps_the_reply_going(
        self,
        database,
        clean_db,
        fake_upstream,
        redis_url,  # noqa: F811
    ):
        # The rejoin is followed through Redis: the first worker, with no client of its own,
        # must see it there and not cancel the reply when its grace ends.
        fake_upstream.state.tokens = 400
        fake_upstream.state.token_delay = 0.01
        settings = _settings(database, fake_upstream, redis_url, reply_resume_grace_seconds=1)
        async with (
            server(settings) as first,
            server(settings) as second,
            httpx.AsyncClient(base_url=first.base_url, timeout=20) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=20) as two,
        ):
            user = await register(one)
            chat = await new_chat(one, user)
            before = await _drop_after(one, user, chat, 3)
            async with two.stream(
                "GET",
                f"/api/chats/{chat['id']}/messages/{before[0].data['assistant_message_id']}/stream",
                headers=user.headers,
                params={"last_event_id": before[-1].id},
            ) as response:
                after = await collect_sse(response)
        assert after[-1].event == "done" and after[-1].data["status"] == "complete"
        assert text_of(before) + text_of(after) == after[-1].data["content"]
        assert fake_upstream.state.disconnects == 0

    async def test_without_a_rejoin_the_upstream_is_closed_after_the_grace(
        self,
        database,
        clean_db,
        fake_upstream,
        redis_url,  # noqa: F811
    ):
        fake_upstream.state.tokens = 2000
        fake_upstream.state.token_delay = 0.01
        settings = _settings(database, fake_upstream, redis_url, reply_resume_grace_seconds=1)
        async with (
            server(settings) as first,
            httpx.AsyncClient(base_url=first.base_url, timeout=20) as one,
        ):
            user = await register(one)
            chat = await new_chat(one, user)
            await _drop_after(one, user, chat, 3)
            await wait_until(fake_upstream.state.disconnected.is_set, timeout=10)
            saved = await _saved(one, user, chat)
        assert saved["status"] == "cancelled" and saved["error_code"] == "client_disconnected"


def _events_in(body: bytes) -> list[tuple[str, dict]]:
    """A whole SSE body read at once, as (event, data) pairs: lighter than a reader per line
    for hundreds of clients in one test process."""
    events = []
    for frame in body.decode().replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.split("\n") if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


class TestACrowdRejoiningOnAnotherWorker:
    async def test_all_get_the_whole_text_and_the_reply_is_not_cancelled(
        self,
        database,
        clean_db,
        fake_upstream,
        redis_url,  # noqa: F811
    ):
        # 500 clients follow through the second worker a reply the first streams, then the
        # client that started it leaves. One Redis connection per follower exhausted redis-py's
        # pool of 100: rejoiners got `reply_not_resumable`, viewer renewals failed, and the
        # first worker cancelled the reply as `client_disconnected` while they still followed.
        crowd_size, tokens = 500, 150
        fake_upstream.state.tokens = tokens
        fake_upstream.state.token_delay = 0.05  # few events, each one sent 500 times
        settings = _settings(database, fake_upstream, redis_url, reply_resume_grace_seconds=1)
        limits = httpx.Limits(max_connections=crowd_size + 10, max_keepalive_connections=0)
        async with (
            server(settings) as first,
            server(settings) as second,
            httpx.AsyncClient(base_url=first.base_url, timeout=60) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=60, limits=limits) as two,
        ):
            user = await register(one)
            chat = await new_chat(one, user)
            following = 0

            async def rejoin(message_id: str) -> list[tuple[str, dict]]:
                nonlocal following
                url = f"/api/chats/{chat['id']}/messages/{message_id}/stream"
                body = b""
                async with two.stream("GET", url, headers=user.headers) as response:
                    assert response.status_code == 200
                    async for chunk in response.aiter_bytes():
                        following += not body  # its first events came: it follows the reply
                        body += chunk
                return _events_in(body)

            async with one.stream(
                "POST",
                f"/api/chats/{chat['id']}/messages",
                json={"content": "Long one"},
                headers={**user.headers, **SSE},
            ) as response:
                start = await anext(iter_sse(response))
                message_id = start.data["assistant_message_id"]
                crowd = [asyncio.create_task(rejoin(message_id)) for _ in range(crowd_size)]
                await wait_until(lambda: following == crowd_size, timeout=60)
            # The client that started the reply has left; the crowd still follows it.
            followed = await asyncio.gather(*crowd)
            saved = await _saved(one, user, chat)
        whole = "".join(f"tok{i} " for i in range(tokens))
        for events in followed:
            assert events[-1][0] == "done", events[-1]
            assert "".join(data["content"] for name, data in events if name == "delta") == whole
        assert saved["status"] == "complete" and saved["content"] == whole
        assert fake_upstream.state.disconnects == 0


class TestRedisReplyBuffer:
    async def test_a_follower_gets_every_event_whatever_the_batches(self, redis_url):  # noqa: F811
        name = f"parley-test-{uuid.uuid4().hex[:12]}"
        client = connect_redis(redis_url, name=name)
        buffer = RedisReplyBuffer(client, keep_seconds=60, max_entries=1000)
        reply_id = str(uuid.uuid4())

        async def following():
            clients = await buffer.client.client_list()
            return any(c.get("name") == name and c.get("cmd") == "xread" for c in clients)

        try:
            for number in (1, 2, 3):
                buffer.publish(reply_id, reply_events.delta(f"part {number} ").numbered(number))
            await buffer.flush()
            got = []

            async def follow(after):
                async for event in buffer.follow(reply_id, after, alive=_alive):
                    got.append(event)

            # Caught up at 3: the next entry holds event 4 alone, then 5 and 6 come together.
            follower = asyncio.create_task(follow(3))
            await wait_until(following)  # caught up, blocked in XREAD
            buffer.publish(reply_id, reply_events.delta("part 4 ").numbered(4))
            await buffer.flush()
            buffer.publish(reply_id, reply_events.delta("part 5 ").numbered(5))
            buffer.publish(reply_id, ReplyEvent("done", {"content": "all"}).numbered(6))
            await buffer.flush()
            await asyncio.wait_for(follower, timeout=10)
            assert [(e.id, e.name) for e in got] == [(4, "delta"), (5, "delta"), (6, "done")]
            # From the middle of a batch: only what comes after.
            got.clear()
            await asyncio.wait_for(follow(5), timeout=10)
            assert [e.id for e in got] == [6]
        finally:
            await buffer.close()
            await client.aclose()

    async def test_followers_of_a_reply_share_one_reader_and_one_viewer_place(
        self,
        redis_url,  # noqa: F811
    ):
        name = f"parley-test-{uuid.uuid4().hex[:12]}"
        client = connect_redis(redis_url, name=name)
        buffer = RedisReplyBuffer(client, keep_seconds=60, max_entries=1000)
        reply_id = str(uuid.uuid4())
        received: dict[int, list[ReplyEvent]] = {number: [] for number in range(50)}

        async def follow(number):
            async for event in buffer.follow(reply_id, 0, alive=_alive):
                received[number].append(event)

        try:
            buffer.publish(reply_id, reply_events.delta("first ").numbered(1))
            await buffer.flush()
            followers = [asyncio.create_task(follow(number)) for number in received]
            await wait_until(lambda: all(received.values()))

            async def blocked_readers():
                clients = await buffer.client.client_list()
                return sum(c.get("name") == name and c.get("cmd") == "xread" for c in clients)

            readers = await wait_until(blocked_readers)
            viewers = await buffer.client.zcard(f"parley:reply:{reply_id}:viewers")
            buffer.publish(reply_id, ReplyEvent("done", {"content": "first"}).numbered(2))
            await buffer.flush()
            await asyncio.wait_for(asyncio.gather(*followers), timeout=10)
        finally:
            await buffer.close()
            await client.aclose()
        assert readers == 1 and viewers == 1
        assert all([e.id for e in events] == [1, 2] for events in received.values())


async def _alive():
    return True


class TestIdempotentRetryOnAnotherWorker:
    async def test_a_retried_post_starts_no_second_generation(
        self,
        database,
        clean_db,
        fake_upstream,
        redis_url,  # noqa: F811
    ):
        fake_upstream.state.tokens = 100
        fake_upstream.state.token_delay = 0.01
        settings = _settings(database, fake_upstream, redis_url)
        key = {"Idempotency-Key": str(uuid.uuid4())}
        async with (
            server(settings) as first,
            server(settings) as second,
            httpx.AsyncClient(base_url=first.base_url, timeout=20) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=20) as two,
        ):
            user = await register(one)
            chat = await new_chat(one, user)
            before = await _drop_after(one, user, chat, 5, headers=key)
            async with two.stream(
                "POST",
                f"/api/chats/{chat['id']}/messages",
                json={"content": "Long one"},
                headers={**user.headers, **SSE, **key},
            ) as response:
                assert response.headers["idempotent-replayed"] == "true"
                again = await collect_sse(response)
            json_retry = await two.post(
                f"/api/chats/{chat['id']}/messages",
                json={"content": "Long one"},
                headers={**user.headers, **key},
            )
        assert again[0].event == "start" and again[0].data == before[0].data
        assert text_of(again) == again[-1].data["content"]
        assert text_of(before) == again[-1].data["content"][: len(text_of(before))]
        assert json_retry.status_code == 200 and json_retry.json() == again[-1].data
        assert len(fake_upstream.state.requests) == 1
