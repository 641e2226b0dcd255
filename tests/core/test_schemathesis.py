"""Property-based checks of every operation in the app's own OpenAPI schema, over real HTTP."""

import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from app.core.config import Settings
from app.main import create_app
from tests.conftest import PASSWORD, make_settings
from tests.support.live import live_server

MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def api(database) -> Iterator[str]:
    app = create_app(make_settings(database, echo_token_delay=0.0))
    with live_server(app) as base_url:
        yield base_url


# The schema does not depend on the database, so it is read from an app built at import time.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(_env_file=None, environment="test")).openapi()  # type: ignore[call-arg]
)


def _fresh_token(base_url: str) -> str:
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    response = httpx.post(
        f"{base_url}/api/auth/register",
        json={"email": email, "display_name": "Fuzz", "password": PASSWORD},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_responses_match_the_schema(case, api):
    # A fresh account per example: fuzzed logout or session revocation must not starve the rest.
    headers = {"Authorization": f"Bearer {_fresh_token(api)}"}
    response = case.call(base_url=api, headers=headers, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    case.validate_response(response, checks=(response_schema_conformance, content_type_conformance))
