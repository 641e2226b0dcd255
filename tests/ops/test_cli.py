"""`parley create-admin`: makes the first administrator in the database at DATABASE_URL."""

import asyncio
import io
import subprocess
import sys

import pytest

from app.cli import main
from tests.support.api import assert_error, login, register
from tests.support.database import ROOT

ADMIN_PASSWORD = "an administrator passphrase that is long"


@pytest.fixture
def cli_env(monkeypatch, database, clean_db):
    monkeypatch.setenv("DATABASE_URL", database.url)
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    monkeypatch.setenv("PARLEY_ADMIN_PASSWORD", ADMIN_PASSWORD)


async def run_cli(*args: str) -> int:
    # main() calls asyncio.run(); give it a thread without a running loop.
    return await asyncio.to_thread(main, list(args))


class TestCreateAdmin:
    async def test_creates_a_verified_admin_that_can_sign_in(self, cli_env, client, capsys):
        status = await run_cli("create-admin", "--email", "Root@Example.com")

        assert status == 0
        assert "Created administrator root@example.com" in capsys.readouterr().out
        response = await login(client, "root@example.com", ADMIN_PASSWORD)
        assert response.status_code == 200, response.text
        assert response.json()["user"]["role"] == "admin"
        assert response.json()["user"]["email_verified"] is True
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        assert (await client.get("/api/admin/users", headers=headers)).status_code == 200

    async def test_reads_the_password_from_the_named_variable(self, cli_env, client, monkeypatch):
        monkeypatch.setenv("OTHER_SECRET", "another admin passphrase, long enough")
        status = await run_cli(
            "create-admin", "--email", "ops@example.com", "--password-env", "OTHER_SECRET"
        )
        assert status == 0
        response = await login(client, "ops@example.com", "another admin passphrase, long enough")
        assert response.status_code == 200

    async def test_existing_account_needs_promote(self, cli_env, client, capsys):
        user = await register(client)

        refused = await run_cli("create-admin", "--email", user.email)
        promoted = await run_cli("create-admin", "--email", user.email, "--promote")

        assert refused == 1
        assert "--promote" in capsys.readouterr().err
        assert promoted == 0
        assert (await client.get("/api/admin/users", headers=user.headers)).status_code == 200

    async def test_weak_password_is_refused(self, cli_env, client, monkeypatch, capsys):
        monkeypatch.setenv("PARLEY_ADMIN_PASSWORD", "password1234")

        status = await run_cli("create-admin", "--email", "root@example.com")

        assert status == 1
        assert "Password refused" in capsys.readouterr().err
        assert_error(await login(client, "root@example.com", "password1234"), 401)

    async def test_without_a_terminal_or_variable_it_says_what_to_do(
        self, cli_env, monkeypatch, capsys
    ):
        monkeypatch.delenv("PARLEY_ADMIN_PASSWORD")
        monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal

        status = await run_cli("create-admin", "--email", "root@example.com")

        assert status == 1
        assert "PARLEY_ADMIN_PASSWORD" in capsys.readouterr().err

    async def test_invalid_email(self, cli_env, capsys):
        assert await run_cli("create-admin", "--email", "not an email") == 2

    def test_entry_point_runs(self):
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "create-admin", "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0
        assert "--email" in result.stdout
