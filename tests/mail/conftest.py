from collections.abc import Iterator

import pytest

from tests.support.smtp_server import SMTPTestServer, running_smtp_server

SLOW_SERVER_DELAY = 0.5


@pytest.fixture
def smtp_server() -> Iterator[SMTPTestServer]:
    """A real SMTP server on a free loopback port; read mails with `received` / `wait_for`."""
    with running_smtp_server() as server:
        yield server


@pytest.fixture
def slow_smtp_server() -> Iterator[SMTPTestServer]:
    """Like `smtp_server`, but each DATA command takes SLOW_SERVER_DELAY seconds to answer."""
    with running_smtp_server(delay=SLOW_SERVER_DELAY) as server:
        yield server
