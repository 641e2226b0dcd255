"""The schema comes from migrations: they must match the models and run both ways."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.core.config import Settings
from app.core.db import create_engine
from app.core.migrations import include_name, include_object
from app.models import Base
from tests.support.database import migrate
from tests.support.settings import make_settings


async def _diff(settings: Settings) -> list:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync,
                        opts={
                            "compare_type": True,
                            "include_object": include_object,
                            "include_name": include_name,
                        },
                    ),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()


async def _tables(settings: Settings) -> set[str]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


class TestMigrations:
    async def test_models_and_migrations_do_not_drift(self, database):
        assert await _diff(make_settings(database)) == []

    async def test_upgrade_downgrade_upgrade(self, empty_database):
        settings = make_settings(empty_database)
        model_tables = set(Base.metadata.tables)
        migrate(empty_database.url)
        assert model_tables <= await _tables(settings)
        migrate(empty_database.url, "base", down=True)
        assert not (model_tables & await _tables(settings))
        migrate(empty_database.url)
        assert model_tables <= await _tables(settings)
        assert await _diff(settings) == []
