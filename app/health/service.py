from app.generation.upstream.probe import UpstreamProbe
from app.health.repository import HealthRepository
from app.health.schemas import DependencyState, Readiness


class HealthService:
    """Whether the app can serve: its database and its upstreams."""

    def __init__(self, *, database: HealthRepository, upstreams: UpstreamProbe | None) -> None:
        self.database = database
        self.upstreams = upstreams

    async def readiness(self) -> Readiness:
        """The database's state and, when the app has started, each upstream's."""
        checks: dict[str, DependencyState] = {}
        try:
            await self.database.ping()
            checks["database"] = DependencyState(status="ok")
        except Exception as exc:
            checks["database"] = DependencyState(status="error", detail=type(exc).__name__)
        if self.upstreams is not None:
            for name, state in (await self.upstreams.check()).items():
                checks[name] = DependencyState(
                    status="ok" if state.ok else "error", detail=state.detail
                )
        ready = all(check.status == "ok" for check in checks.values())
        return Readiness(status="ready" if ready else "not_ready", checks=checks)
