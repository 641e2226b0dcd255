from collections.abc import Iterator

import pytest

from tests.support.smtp_server import SMTPTestServer, running_smtp_server


@pytest.fixture
def held_smtp_server() -> Iterator[SMTPTestServer]:
    """Like `smtp_server`, but each DATA command waits for the test's `release()` (or the
    fixture's end) before it is answered: a slow mail server whose pace the test controls."""
    with running_smtp_server(hold=True) as server:
        yield server
