"""Account work that runs after the response, so the answer cannot depend on what it finds."""

from app.auth.dependencies import AuthRuntime, build_account_service
from app.core.uow import unit_of_work


def schedule_password_reset(runtime: AuthRuntime, email: str) -> None:
    """Looks the email up, and mails a reset link if it has an account, in the background."""

    async def job() -> None:
        async with unit_of_work(runtime.db) as uow:
            await build_account_service(uow, runtime).request_password_reset(email)

    runtime.jobs.spawn("password_reset", job)


def schedule_verification_resend(runtime: AuthRuntime, email: str) -> None:
    """Mails a new verification link if the email is an unverified account's, in the background."""

    async def job() -> None:
        async with unit_of_work(runtime.db) as uow:
            await build_account_service(uow, runtime).resend_verification(email)

    runtime.jobs.spawn("resend_verification", job)
