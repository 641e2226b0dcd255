"""An app factory for bench/request_cost.py's A/B run: Parley exactly as it is, except that
`audit.record()` records nothing, so a sign-in costs what it did before the audit log."""

from typing import Any

from fastapi import FastAPI

import app.audit
from app.main import create_app as parley_app


async def _record_nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


def create_app() -> FastAPI:
    app.audit.record = _record_nothing  # type: ignore[assignment]
    return parley_app()
