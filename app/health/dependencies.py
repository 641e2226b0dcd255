from typing import Annotated

from fastapi import Depends, Request

from app.core.deps import RuntimeDep
from app.health.repository import HealthRepository
from app.health.service import HealthService


async def get_health_service(request: Request, runtime: RuntimeDep) -> HealthService:
    # The upstreams are known once the app has started (its lifespan builds them).
    generation = getattr(request.app.state, "generation", None)
    return HealthService(
        database=HealthRepository(runtime.db.engine),
        upstreams=generation.probe if generation is not None else None,
        router=generation.router if generation is not None else None,
    )


HealthServiceDep = Annotated[HealthService, Depends(get_health_service)]
