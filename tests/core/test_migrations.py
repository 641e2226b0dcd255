"""Migrations: they build exactly the models' schema, and go down and up again cleanly."""

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.core.db import create_engine
from app.models import Base
from tests.conftest import make_settings, migrate, run_in_thread


def schema_state(database: Any) -> tuple[list[Any], set[str]]:
    """(differences between the database and the models, the tables present)."""
    result: dict[str, Any] = {}

    async def inspect_database() -> None:
        engine = create_engine(make_settings(database))
        try:
            async with engine.connect() as connection:

                def compare(sync_connection: Any) -> None:
                    context = MigrationContext.configure(
                        sync_connection, opts={"compare_type": True}
                    )
                    result["diff"] = compare_metadata(context, Base.metadata)
                    result["tables"] = set(inspect(sync_connection).get_table_names())

                await connection.run_sync(compare)
        finally:
            await engine.dispose()

    run_in_thread(lambda: asyncio.run(inspect_database()))
    return result["diff"], result["tables"]


class TestMigrations:
    def test_head_matches_the_models_and_round_trips(self, empty_database):
        migrate(empty_database.url)
        diff, tables = schema_state(empty_database)
        assert diff == []
        assert {"account_token", "login_attempt", "password_history", "mfa_recovery_code"} <= tables

        migrate(empty_database.url, "base", down=True)
        _diff, tables = schema_state(empty_database)
        assert tables <= {"alembic_version"}

        migrate(empty_database.url)
        diff, _tables = schema_state(empty_database)
        assert diff == []
