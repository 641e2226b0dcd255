"""Operator commands: `parley create-admin --email admin@example.com`.

The password is read from the environment variable named by --password-env (default
PARLEY_ADMIN_PASSWORD) or, when that is unset, prompted for twice without echo. The command runs
against DATABASE_URL (environment or .env), which must be migrated (`alembic upgrade head`).
"""

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError, IntegrityError

from app.auth.errors import WeakPassword
from app.auth.passwords import check_password_policy
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.emails import normalise_email
from app.core.security import PasswordHasher
from app.users.models import Role, User
from app.users.repository import UserRepository

DEFAULT_PASSWORD_ENV = "PARLEY_ADMIN_PASSWORD"  # noqa: S105 - the variable's name


class CommandError(Exception):
    """A failure to report on stderr with exit status 1."""


def _read_password(env_name: str) -> str:
    from_env = os.environ.get(env_name)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise CommandError(f"No terminal to prompt on: set {env_name} to the password instead.")
    first = getpass.getpass("Password for the new administrator: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise CommandError("The passwords differ.")
    return first


async def create_admin(
    settings: Settings,
    *,
    email: str,
    display_name: str,
    password_env: str,
    promote: bool,
) -> str:
    """Creates an administrator (or promotes an existing account); returns what was done."""
    database = Database(settings)
    try:
        async with database.transaction() as session:
            users = UserRepository(session)
            existing = await users.get_by_email(email)
            if existing is not None:
                if not promote:
                    raise CommandError(
                        f"{email} already has an account: add --promote to make it an admin."
                    )
                existing.role = Role.ADMIN
                existing.is_active = True
                return f"Promoted {email} to administrator."
            password = _read_password(password_env)
            await check_password_policy(
                password,
                email=email,
                display_name=display_name,
                min_score=settings.password_min_score,
            )
            hasher = PasswordHasher(settings.bcrypt_rounds)
            await users.add(
                User(
                    email=email,
                    display_name=display_name,
                    password_hash=await hasher.hash(password),
                    role=Role.ADMIN,
                    # The operator vouches for the address.
                    email_verified_at=utcnow(),
                )
            )
            return f"Created administrator {email}."
    except WeakPassword as exc:
        raise CommandError(f"Password refused: {exc.message}") from exc
    except IntegrityError as exc:
        raise CommandError(f"{email} was registered meanwhile; run again with --promote.") from exc
    except DBAPIError as exc:
        raise CommandError(
            f"Database error ({type(exc.orig).__name__}): is DATABASE_URL right and migrated "
            "(alembic upgrade head)?"
        ) from exc
    finally:
        await database.dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley operator commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create-admin",
        help="create the first administrator (or promote an existing account)",
        description="Create an administrator account in the database at DATABASE_URL.",
    )
    create.add_argument("--email", required=True, help="the administrator's email")
    create.add_argument("--display-name", default="Administrator", help="shown in the app")
    create.add_argument(
        "--password-env",
        default=DEFAULT_PASSWORD_ENV,
        metavar="NAME",
        help=f"environment variable holding the password (default {DEFAULT_PASSWORD_ENV}); "
        "prompted for when unset",
    )
    create.add_argument(
        "--promote",
        action="store_true",
        help="if the email already has an account, make it an administrator",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        email = normalise_email(args.email.strip())
    except ValueError as exc:
        print(f"parley: invalid email: {exc}", file=sys.stderr)
        return 2
    settings = Settings()
    try:
        message = asyncio.run(
            create_admin(
                settings,
                email=email,
                display_name=args.display_name.strip() or "Administrator",
                password_env=args.password_env,
                promote=args.promote,
            )
        )
    except CommandError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
