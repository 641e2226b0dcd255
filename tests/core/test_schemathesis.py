"""Property-based checks of every operation in the app's own OpenAPI schema, over real HTTP, with
every Schemathesis check (status codes, content types, headers, response schemas, positive data
accepted, negative data rejected, ...), as a user and as an administrator, and statefully
(chains of operations linked by the ids they return)."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Flaky
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.cli import create_admin
from app.core.config import Settings
from app.main import create_app
from tests.support.api import PASSWORD
from tests.support.live import live_server
from tests.support.settings import make_settings

MAX_EXAMPLES = 15
# The same examples on every run, so that CI's verdict is the code's, not the draw's. Set
# PARLEY_FUZZ_RANDOM=1 to draw new ones (and more with PARLEY_FUZZ_EXAMPLES) when hunting.
DERANDOMIZE = os.environ.get("PARLEY_FUZZ_RANDOM") != "1"
MAX_EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", MAX_EXAMPLES))
STATEFUL_SCENARIOS = 25
STATEFUL_STEPS = 10


@pytest.fixture(scope="module")
def api(database) -> Iterator[tuple[str, Settings]]:
    settings = make_settings(database, echo_token_delay=0.0)
    with live_server(create_app(settings)) as base_url:
        yield base_url, settings


# The schema does not depend on the database, so it is read from an app built at import time.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(_env_file=None, environment="test")).openapi()
)


def fresh_token(base_url: str, settings: Settings, *, admin: bool) -> str:
    """A new account per example: fuzzed logouts, revocations or deletions starve nothing else."""
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    response = httpx.post(
        f"{base_url}/api/auth/register",
        json={"email": email, "display_name": "Fuzz", "password": PASSWORD},
    )
    response.raise_for_status()
    if admin:
        asyncio.run(
            create_admin(
                settings, email=email, display_name="Fuzz", password_env="UNUSED", promote=True
            )
        )
    return str(response.json()["access_token"])


def documented_refusal(ctx, response, case) -> bool | None:
    """Valid input may still be refused by a rule the schema cannot express (a weak password, a
    range too long, a model that does not exist), but only with an error code the operation
    documents, and never as a failed validation of the input itself."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 422, 423):
        return None
    code = response.json()["error"]["code"]
    assert code not in ("validation_error", "malformed_json", "bad_request"), (
        f"valid input refused as {code}: {response.text[:300]}"
    )
    documented = case.operation.definition.raw["responses"][str(response.status_code)]
    assert f"`{code}`" in documented["description"], (code, documented["description"])
    return None


def check_operation(case, api, *, admin: bool) -> None:
    base_url, settings = api
    token = fresh_token(base_url, settings, admin=admin)
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[documented_refusal],
        timeout=30,
    )


FUZZ_SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_conforms(case, api):
    """As a user: every operation, the administrators' ones included (refused, as documented)."""
    check_operation(case, api, admin=False)


@schema.include(path_regex="^/api/admin/").parametrize()
@FUZZ_SETTINGS
def test_admin_operations_conform(case, api):
    """As an administrator: the operations only administrators may use. Elsewhere an
    administrator runs the same code as a user, which the test above fuzzes."""
    check_operation(case, api, admin=True)


class Workflow(schema.as_state_machine()):  # type: ignore[misc]
    """Chains of calls: ids returned by one operation (a chat, a message, a session, a user) feed
    the next. Each scenario signs in afresh."""

    base_url = ""
    settings: Settings
    admin = False
    failures: list[str]
    steps: list[str]

    def setup(self) -> None:
        self.token = fresh_token(self.base_url, self.settings, admin=self.admin)

    def get_call_kwargs(self, case) -> dict:
        return {
            "base_url": self.base_url,
            "headers": {"Authorization": f"Bearer {self.token}"},
            "timeout": 30,
        }

    def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
        # Collected rather than raised: Hypothesis replays a failing scenario to report it, and
        # a server that kept state from the first run cannot answer the same way twice.
        try:
            case.validate_response(
                response,
                excluded_checks=[positive_data_acceptance],
                additional_checks=[documented_refusal],
                transport_kwargs=kwargs,
            )
        except Exception as exc:
            self.failures.append(f"{case.method} {case.formatted_path}: {exc}"[:2000])
        self.steps.append(f"{case.method} {case.path} -> {response.status_code}")


STATEFUL_SETTINGS = hypothesis_settings(
    max_examples=STATEFUL_SCENARIOS,
    stateful_step_count=STATEFUL_STEPS,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # The server keeps state between steps, so a scenario cannot be replayed: no shrinking, no
    # saved examples.
    phases=[Phase.generate],
    database=None,
    derandomize=DERANDOMIZE,
)


@pytest.mark.parametrize("role", ["user", "admin"])
def test_stateful_workflows_conform(api, role):
    base_url, settings = api
    failures: list[str] = []
    steps: list[str] = []
    machine: type[Workflow] = type(
        f"Workflow_{role}",
        (Workflow,),
        {
            "base_url": base_url,
            "settings": settings,
            "admin": role == "admin",
            "failures": failures,
            "steps": steps,
        },
    )
    # The server keeps state, so Hypothesis can see the same choices lead elsewhere and stop
    # exploring with Flaky (Schemathesis's own runner ends a suite the same way); every step that
    # ran was checked.
    with contextlib.suppress(Flaky):
        machine.run(settings=STATEFUL_SETTINGS)
    assert not failures, "\n\n".join(failures[:5])
    # Enough steps ran, some of them successful, for the run to mean something.
    assert len(steps) >= STATEFUL_SCENARIOS, steps
    assert any(step.endswith(("-> 200", "-> 201")) for step in steps), steps
