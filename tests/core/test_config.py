import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


class TestSettings:
    def test_env_example_lists_every_setting(self):
        listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
        expected = {name.upper() for name in Settings.model_fields}
        assert expected - listed == set()
        assert listed - expected == set()

    def test_env_example_loads_as_is(self, tmp_path, monkeypatch):
        (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
        monkeypatch.chdir(tmp_path)
        settings = Settings()
        assert settings.database_url == "sqlite+aiosqlite:///./parley.db"
        assert settings.daily_token_quota is None and settings.redis_url is None

    @pytest.mark.parametrize("secret", [None, "short-secret", "change-me-in-production"])
    def test_production_refuses_a_default_or_short_secret(self, secret):
        values: dict[str, Any] = {"environment": "production"}
        if secret is not None:
            values["secret_key"] = secret
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings(_env_file=None, **values)

    def test_production_accepts_a_long_random_secret(self):
        settings = Settings(_env_file=None, environment="production", secret_key="x" * 48)
        assert settings.secure_cookies is True

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
            ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
            ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ],
    )
    def test_database_urls_get_the_async_driver(self, given, expected):
        assert Settings(_env_file=None, database_url=given).database_url == expected
