"""The /v1 surface's tests drive Parley (a real uvicorn) through the official `openai` SDK and
`langchain-openai`, against the fake upstream. Sync clients run in a thread: the fake upstream
serves on the test's own event loop."""

from collections.abc import AsyncIterator

import openai
import pytest

from tests.support.api import SignedInUser
from tests.support.upstream_fixtures import Parley


def v1_url(parley: Parley) -> str:
    return f"{parley.base_url}/v1"


@pytest.fixture
async def client(parley: Parley, author: SignedInUser) -> AsyncIterator[openai.AsyncOpenAI]:
    """The async SDK, signed in as `author` with a JWT access token; no retries unless a test
    asks for them."""
    async with openai.AsyncOpenAI(
        base_url=v1_url(parley), api_key=author.access_token, max_retries=0
    ) as sdk:
        yield sdk


@pytest.fixture
def sync_client(parley: Parley, author: SignedInUser) -> openai.OpenAI:
    return openai.OpenAI(base_url=v1_url(parley), api_key=author.access_token, max_retries=0)
