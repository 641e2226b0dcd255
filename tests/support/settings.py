"""Settings for a test app: the run's database, cheap bcrypt, rate limits out of reach."""

import os
import tempfile
from pathlib import Path
from typing import Any

from app.core.config import Settings
from tests.support.database import TestDatabase
from tests.support.smtp_server import SMTPTestServer

TEST_FILE_STORAGE = Path(tempfile.gettempdir()) / f"parley-test-files-{os.getpid()}"

# Every test client comes from 127.0.0.1: ordinary tests must never trip a rate limit, so the
# default test settings raise them all; the rate-limit tests set low ones explicitly.
HIGH_LIMIT = "10000/minute"
RATE_LIMIT_SETTINGS = {
    name: HIGH_LIMIT
    for name in Settings.model_fields
    if name.startswith("rate_limit_")
    and name not in ("rate_limit_enabled", "rate_limit_strategy", "rate_limit_key_prefix")
}


def make_settings(database: TestDatabase, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database.url,
        "secret_key": "test-secret-key-that-is-long-enough-0123456789",
        "bcrypt_rounds": 4,
        "log_json": True,
        "log_level": "WARNING",
        "db_pool_size": 5,
        # Uploads of tests that do not choose a directory stay out of the working tree.
        "file_storage_dir": str(TEST_FILE_STORAGE),
        **RATE_LIMIT_SETTINGS,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def smtp_settings(server: SMTPTestServer) -> dict[str, Any]:
    """Settings overrides that send the app's mail to `server`."""
    return {
        "smtp_host": server.host,
        "smtp_port": server.port,
        "smtp_security": "none",
        "smtp_from": "Parley <no-reply@parley.test>",
        "public_base_url": "https://parley.test",
    }
