import pytest

from app.core.config import Settings


@pytest.fixture
def settings(mail_settings: Settings) -> Settings:
    """Profile tests read their mail (email change links) from a real SMTP server."""
    return mail_settings
