"""The schema comes from migrations: they match the models, and go down and up again."""

import pytest
from alembic.util.exc import CommandError
from sqlalchemy import inspect

from alembic import command
from app.core.db import create_engine
from tests.support.database import alembic_config, migrate, run_in_thread
from tests.support.settings import make_settings


async def table_names(database) -> set[str]:
    engine = create_engine(make_settings(database))
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


class TestMigrations:
    def test_models_and_migrations_do_not_drift(self, database):
        config = alembic_config(database.url)
        try:
            run_in_thread(lambda: command.check(config))
        except CommandError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"models and migrations differ: {exc}")

    async def test_upgrade_downgrade_upgrade(self, empty_database):
        migrate(empty_database.url)
        assert {"chat", "message"} <= await table_names(empty_database)
        migrate(empty_database.url, "0001", down=True)
        left = await table_names(empty_database)
        assert "chat" not in left and "message" not in left
        assert not any(name.endswith("_search") or "_search_" in name for name in left)
        migrate(empty_database.url)
        assert {"chat", "message"} <= await table_names(empty_database)
