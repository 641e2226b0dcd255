"""A group's daily token quota applies to each member, and the tighter of the user's own quota
and their groups' applies: replies over it are refused (429) before the upstream is called,
and GET /api/usage says which limit holds."""

from tests.groups.conftest import add_member, create_group
from tests.support.api import SignedInUser, assert_error
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import Parley


async def generate(parley: Parley, user: SignedInUser) -> int:
    response = await parley.http.post(
        "/api/generate", json={"prompt": "Say hello"}, headers=user.headers
    )
    if response.status_code != 200:
        assert_error(response, 429, "quota_exceeded")
    return response.status_code


async def daily_limit(parley: Parley, user: SignedInUser) -> int | None:
    response = await parley.http.get("/api/usage", headers=user.headers)
    assert response.status_code == 200, response.text
    limit: int | None = response.json()["quota"]["daily_limit"]
    return limit


class TestGroupQuota:
    async def test_a_group_quota_tighter_than_the_users_applies(
        self,
        parley: Parley,
        admin: SignedInUser,
        member: SignedInUser,
        outsider: SignedInUser,
        fake_upstream: FakeUpstream,
    ) -> None:
        group = await create_group(parley.http, admin, daily_token_quota=5)
        await add_member(parley.http, admin, group, member)
        assert await daily_limit(parley, member) == 5
        assert await daily_limit(parley, outsider) is None
        called = len(fake_upstream.state.requests)
        assert await generate(parley, member) == 429
        assert len(fake_upstream.state.requests) == called
        assert await generate(parley, outsider) == 200

    async def test_the_users_own_quota_applies_when_tighter(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser
    ) -> None:
        loose = await create_group(parley.http, admin, name="loose", daily_token_quota=100_000)
        await add_member(parley.http, admin, loose, member)
        assert await daily_limit(parley, member) == 100_000
        assert await generate(parley, member) == 200
        own = await parley.http.patch(
            f"/api/admin/users/{member.user_id}",
            json={"daily_token_quota": 5},
            headers=admin.headers,
        )
        assert own.status_code == 200, own.text
        assert await daily_limit(parley, member) == 5
        assert await generate(parley, member) == 429

    async def test_the_tightest_group_applies_and_leaving_lifts_it(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser
    ) -> None:
        tight = await create_group(parley.http, admin, name="tight", daily_token_quota=5)
        loose = await create_group(parley.http, admin, name="loose", daily_token_quota=100_000)
        for group in (tight, loose):
            await add_member(parley.http, admin, group, member)
        assert await daily_limit(parley, member) == 5
        assert await generate(parley, member) == 429
        await parley.http.delete(
            f"/api/admin/groups/{tight['id']}/members/{member.user_id}", headers=admin.headers
        )
        assert await daily_limit(parley, member) == 100_000
        assert await generate(parley, member) == 200
