import pytest

from app.core.config import Settings
from tests.support.api import SignedInUser, registered_admin


@pytest.fixture
def settings(mail_settings: Settings) -> Settings:
    """Account tests read their mail (email change links) from a real SMTP server."""
    return mail_settings


@pytest.fixture
async def admin(client, settings: Settings) -> SignedInUser:
    """A user promoted to administrator by the CLI's own code path."""
    return await registered_admin(client, settings)
