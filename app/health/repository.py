from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


class HealthRepository:
    """The readiness check's query. It runs on a connection of its own rather than a request's
    session: a database that cannot be reached must give an answer, not a broken session."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def ping(self) -> None:
        """Raises when the database cannot be reached or cannot answer."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
