from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings


@pytest.fixture
def settings(mail_settings: Settings) -> Settings:
    """Auth tests read their mail from a real SMTP server."""
    return mail_settings


@pytest.fixture
async def https_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on https, so that it stores and sends the Secure auth cookies."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http
