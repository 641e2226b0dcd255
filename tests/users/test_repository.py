"""The user table's repository on its own: the administrators' search and the TOTP replay guard."""

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.users.models import User
from app.users.repository import UserRepository


@pytest.fixture
async def users(clean_db: AsyncEngine) -> AsyncIterator[UserRepository]:
    async with async_sessionmaker(clean_db, expire_on_commit=False)() as session:
        yield UserRepository(session)


async def add(session: AsyncSession, email: str, display_name: str = "Someone") -> User:
    user = User(email=email, display_name=display_name, password_hash="x")
    session.add(user)
    await session.flush()
    return user


class TestSearch:
    async def test_wildcards_in_the_query_match_themselves(self, users: UserRepository) -> None:
        await add(users.session, "percent_100%@example.com")
        await add(users.session, "percent-1000@example.com")
        found, total = await users.search("_100%", limit=10, offset=0)
        assert total == 1 and [user.email for user in found] == ["percent_100%@example.com"]

    async def test_matches_the_display_name_whatever_the_case(self, users: UserRepository) -> None:
        await add(users.session, "ada@example.com", "Ada Lovelace")
        await add(users.session, "grace@example.com", "Grace Hopper")
        found, total = await users.search("LOVELACE", limit=10, offset=0)
        assert total == 1 and found[0].email == "ada@example.com"


class TestClaimMfaStep:
    async def test_a_step_is_claimed_once_and_never_an_earlier_one(
        self, users: UserRepository
    ) -> None:
        user = await add(users.session, "mfa@example.com")
        assert await users.claim_mfa_step(user.id, 100)
        assert not await users.claim_mfa_step(user.id, 100)
        assert not await users.claim_mfa_step(user.id, 99)
        assert await users.claim_mfa_step(user.id, 101)

    async def test_an_unknown_user_claims_nothing(self, users: UserRepository) -> None:
        assert not await users.claim_mfa_step(uuid.uuid4(), 1)
