"""The groups cache on each worker: it reads the database once and then serves from memory, and
every change reaches every worker at once (in process; with REDIS_URL across processes)."""

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import Database
from app.core.invalidation import Invalidations
from app.core.uow import unit_of_work
from app.groups.access import GroupCache
from tests.groups.conftest import add_member, create_group, restrict
from tests.keys.helpers import make_admin
from tests.ops.test_processes import redis_url  # noqa: F401 - the fixture
from tests.support.api import SignedInUser, register
from tests.support.processes import server
from tests.support.upstream_fixtures import Parley
from tests.support.wait import wait_until


class TestCache:
    async def test_reads_once_then_each_change_drops_what_it_touched(
        self, parley: Parley, member: SignedInUser, db: Database
    ) -> None:
        cache = GroupCache(Invalidations(None))
        user_id = uuid.UUID(member.user_id)
        async with unit_of_work(db) as uow:
            assert await cache.restricted(uow) == frozenset()
            assert (await cache.standing(user_id, uow)).group_ids == frozenset()
            reads = cache.reads
            await cache.restricted(uow)
            await cache.standing(user_id, uow)
            assert cache.reads == reads  # served from memory
        cache.invalidations.publish_soon("groups", str(user_id))
        async with unit_of_work(db) as uow:
            await cache.restricted(uow)
            await cache.standing(user_id, uow)
        assert cache.reads == reads + 1  # the user's standing only
        cache.invalidations.publish_soon("groups", "restricted")
        async with unit_of_work(db) as uow:
            await cache.restricted(uow)
        assert cache.reads == reads + 2

    async def test_the_apps_cache_follows_changes_made_through_the_api(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser, db: Database
    ) -> None:
        cache: GroupCache = parley.app.state.runtime.groups
        user_id = uuid.UUID(member.user_id)

        async def quota() -> int | None:
            async with unit_of_work(db) as uow:
                return (await cache.standing(user_id, uow)).daily_token_quota

        async def restricted() -> frozenset[str]:
            async with unit_of_work(db) as uow:
                return await cache.restricted(uow)

        group = await create_group(parley.http, admin, models=["fake-model"], daily_token_quota=9)
        assert await quota() is None
        await add_member(parley.http, admin, group, member)
        assert await quota() == 9
        await parley.http.patch(
            f"/api/admin/groups/{group['id']}",
            json={"daily_token_quota": 3},
            headers=admin.headers,
        )
        assert await quota() == 3
        assert await restricted() == frozenset()
        await restrict(parley.http, admin, "fake-model")
        assert await restricted() == frozenset({"fake-model"})


class TestTwoWorkers:
    async def test_a_change_on_one_worker_holds_on_the_other_at_once(
        self,
        database: Any,
        clean_db: AsyncEngine,
        fake_upstream: Any,
        redis_url: str,  # noqa: F811
    ) -> None:
        settings = {
            "database_url": database.url,
            "llm_base_url": fake_upstream.base_url,
            "llm_model": "fake-model",
            "redis_url": redis_url,
            "rate_limit_key_prefix": f"parley-test-{uuid.uuid4().hex}",
            "auto_title": "false",
        }
        async with (
            server(settings) as first,
            server(settings) as second,
            httpx.AsyncClient(base_url=first.base_url, timeout=20) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=20) as two,
        ):
            admin, user = await register(one), await register(one)
            await make_admin(clean_db, admin)

            async def listed() -> list[str]:
                response = await two.get("/api/models", headers=user.headers)
                return [m["name"] for m in response.json()]

            # The second worker has cached the (empty) restricted set and the user's standing.
            assert "fake-model" in await listed()
            group = await create_group(one, admin, models=["fake-model"])
            await restrict(one, admin, "fake-model")

            async def hidden() -> bool:
                return "fake-model" not in await listed()

            await wait_until(hidden, timeout=1.0, interval=0.02)
            assert (await add_member(one, admin, group, user)).status_code == 201

            async def shown() -> bool:
                return "fake-model" in await listed()

            await wait_until(shown, timeout=1.0, interval=0.02)
            deleted = await one.delete(f"/api/admin/groups/{group['id']}", headers=admin.headers)
            assert deleted.status_code == 204
            await wait_until(hidden, timeout=1.0, interval=0.02)
