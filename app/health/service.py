from app.generation.upstream.probe import UpstreamProbe
from app.generation.upstream.routing import Router
from app.health.repository import HealthRepository
from app.health.schemas import DependencyState, Readiness


class HealthService:
    """Whether the app can serve: its database and its upstreams."""

    def __init__(
        self,
        *,
        database: HealthRepository,
        upstreams: UpstreamProbe | None,
        router: Router | None = None,
    ) -> None:
        self.database = database
        self.upstreams = upstreams
        self.router = router

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
        if self.router is not None:
            for model in self.router.states:
                if not self.router.healthy(model):
                    checks[f"model:{model}"] = DependencyState(
                        status="degraded", detail="no healthy deployment"
                    )
        if any(check.status == "error" for check in checks.values()):
            return Readiness(status="not_ready", checks=checks)
        degraded = any(check.status == "degraded" for check in checks.values())
        return Readiness(status="degraded" if degraded else "ready", checks=checks)
