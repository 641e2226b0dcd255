import pytest

from app.cli import create_admin
from app.core.config import Settings
from tests.support.api import SignedInUser, register


@pytest.fixture
def settings(mail_settings: Settings) -> Settings:
    """Audit tests read links (verification, reset) from a real SMTP server."""
    return mail_settings


@pytest.fixture
async def admin(client, settings: Settings) -> SignedInUser:
    """A user promoted to administrator by the CLI's own code path."""
    user = await register(client, display_name="Root Admin")
    await create_admin(
        settings,
        email=user.email,
        display_name="Root Admin",
        password_env="UNUSED_FOR_PROMOTION",
        promote=True,
    )
    return user
