"""CPU per API-key check: what a request with a key costs Parley before its handler runs.

    .venv/bin/python bench/api_keys.py [--checks 20000] [--requests 2000]

In one process, on a fresh SQLite file migrated with `alembic upgrade head`: Parley's app (its
lifespan run, no server) with one user and one key made through its API. It then times, with
`time.process_time()` (CPU of the whole process, the SQLite thread included), `--checks` times:

- the key check itself, as every request with a cached key pays it: the HMAC-SHA256 of the key,
  the grant found in the worker's cache, expiry and scope (`KeyChecker.grant` with a hit);
- the same when the worker has no grant cached (after an invalidation): plus the key's row read
  from the database in a short transaction of its own;
- the whole authentication of a key (`KeyChecker.authenticate`: the check, the user's row read
  in a unit of work of its own, the rpm counter left off) next to an access token's
  (`AuthService.resolve_access_token`: JWT decode, session and user read), each in its own unit
  of work;

and then `--requests` times `GET /api/chats` through the ASGI app with the key and with an access
token. Prints a markdown table, and whether the key check met its target (<= 0.2 ms of CPU).
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from app.auth.dependencies import build_auth_service  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.uow import unit_of_work  # noqa: E402
from app.keys.service import KeyChecker  # noqa: E402
from app.main import create_app  # noqa: E402

TARGET_MS = 0.2
PASSWORD = "api-key-bench-password-42"


async def cpu_per_call(count: int, call: Callable[[], Awaitable[object]]) -> float:
    """Milliseconds of process CPU per call, after a warm-up."""
    for _ in range(min(200, count)):
        await call()
    start = time.process_time()
    for _ in range(count):
        await call()
    return (time.process_time() - start) * 1000 / count


async def run(args: argparse.Namespace, url: str) -> list[tuple[str, float]]:
    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=url,
        secret_key="api-key-bench-secret-key-long-enough-0123456789",
        bcrypt_rounds=4,
        log_level="ERROR",
        rate_limit_enabled=False,
        auto_title=False,
    )
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    rows: list[tuple[str, float]] = []
    try:
        runtime = app.state.runtime
        checker = runtime.key_authenticator
        assert isinstance(checker, KeyChecker)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            registered = await http.post(
                "/api/auth/register",
                json={"email": "keys@example.com", "display_name": "Bench", "password": PASSWORD},
            )
            registered.raise_for_status()
            token = registered.json()["access_token"]
            http.cookies.clear()
            jwt = {"Authorization": f"Bearer {token}"}
            created = await http.post(
                "/api/keys", json={"name": "bench", "scopes": ["chats"]}, headers=jwt
            )
            created.raise_for_status()
            key = created.json()["key"]

            async with unit_of_work(runtime.db) as uow:
                await checker.grant(key, uow)  # cached from here on

                async def cached_check() -> None:
                    await checker.grant(key, uow)

                rows.append(
                    (
                        "key check, grant cached (HMAC + look-up)",
                        await cpu_per_call(args.checks, cached_check),
                    )
                )

            async def uncached_check() -> None:
                checker.clear()
                async with unit_of_work(runtime.db) as uow:
                    await checker.grant(key, uow)

            rows.append(
                (
                    "key check, not cached (+ key row read)",
                    await cpu_per_call(args.checks // 4, uncached_check),
                )
            )

            async def key_authentication() -> None:
                async with unit_of_work(runtime.db) as uow:
                    await checker.authenticate(key, scope="chats", uow=uow)

            async def token_authentication() -> None:
                async with unit_of_work(runtime.db) as uow:
                    await build_auth_service(uow, runtime).resolve_access_token(token)

            rows.append(
                (
                    "key authentication (+ user row read)",
                    await cpu_per_call(args.checks // 4, key_authentication),
                )
            )
            rows.append(
                (
                    "access-token authentication (JWT, session and user read)",
                    await cpu_per_call(args.checks // 4, token_authentication),
                )
            )

            async def with_key() -> None:
                (
                    await http.get("/api/chats", headers={"Authorization": f"Bearer {key}"})
                ).raise_for_status()

            async def with_token() -> None:
                (await http.get("/api/chats", headers=jwt)).raise_for_status()

            rows.append(
                ("GET /api/chats with the key", await cpu_per_call(args.requests, with_key))
            )
            rows.append(
                (
                    "GET /api/chats with an access token",
                    await cpu_per_call(args.requests, with_token),
                )
            )
    finally:
        await lifespan.__aexit__(None, None, None)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{directory}/bench.db"
        subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url, "ENVIRONMENT": "test"},
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        rows = asyncio.run(run(args, url))
    print("| what | CPU per call (ms) |")
    print("| --- | ---: |")
    for name, value in rows:
        print(f"| {name} | {value:.3f} |")
    check = rows[0][1]
    verdict = "met" if check <= TARGET_MS else "MISSED"
    print(f"\nkey check target <= {TARGET_MS} ms: {verdict} ({check:.3f} ms)")


if __name__ == "__main__":
    main()
