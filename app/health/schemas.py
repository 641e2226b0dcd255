from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class DependencyState(BaseModel):
    status: Literal["ok", "error", "degraded"]
    detail: str | None = None


class Readiness(BaseModel):
    # degraded: serving, but a model has no healthy deployment (its replies wait for one,
    # fail over to a fallback model, or fail).
    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, DependencyState]
