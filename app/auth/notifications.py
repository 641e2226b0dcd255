"""The security mails of the account flows, queued to go out once the transaction commits."""

from html import escape
from urllib.parse import urlsplit

from app.core.config import Settings
from app.core.logging import request_origin_var
from app.core.uow import UnitOfWork
from app.mail import EmailMessage, Mailer
from app.mail.templates import (
    account_locked_email,
    password_changed_email,
    password_reset_email,
    reset_link,
    verification_email,
    verify_link,
)
from app.users.models import User


def _notice(to: str, display_name: str, subject: str, body: str) -> EmailMessage:
    closing = (
        "If this was not you, reset your password with “Forgot password” on the sign-in page "
        "right away."
    )
    return EmailMessage(
        to=to,
        subject=subject,
        text=f"Hi {display_name},\n\n{body}\n\n{closing}\n\n— Parley\n",
        html=(
            "<!doctype html>\n<html><body>\n"
            f"<p>Hi {escape(display_name)},</p>\n<p>{escape(body)}</p>\n"
            f"<p>{escape(closing)}</p>\n<p>— Parley</p>\n</body></html>\n"
        ),
    )


class Notifier:
    """Mails about the account. Each goes out only after the request's transaction commits, so
    no link reaches an inbox before its token exists, and none at all if the request fails."""

    def __init__(self, uow: UnitOfWork, mailer: Mailer, settings: Settings) -> None:
        self.uow = uow
        self.mailer = mailer
        self.settings = settings

    def _queue(self, message: EmailMessage) -> None:
        self.uow.after_commit(lambda: self.mailer.send_later(message))

    def _base_url(self) -> str:
        """Where Parley's own pages are for this request: the address the user is on when its
        host is one of ALLOWED_HOSTS (a forged Host header is not), else PUBLIC_BASE_URL."""
        origin = request_origin_var.get()
        if origin:
            try:
                host = urlsplit(origin).hostname
            except ValueError:
                host = None
            if host and host in self.settings.allowed_hosts:
                return origin
        return self.settings.public_base_url

    def verification(self, user: User, *, email: str, token: str) -> None:
        link = verify_link(
            token,
            public_base_url=self._base_url(),
            frontend_url=self.settings.frontend_url,
        )
        self._queue(verification_email(email, user.display_name, link))

    def password_reset(self, user: User, *, token: str) -> None:
        link = reset_link(
            token,
            public_base_url=self._base_url(),
            frontend_url=self.settings.frontend_url,
        )
        minutes = self.settings.password_reset_minutes
        self._queue(password_reset_email(user.email, user.display_name, link, minutes))

    def account_locked(self, user: User) -> None:
        minutes = self.settings.lockout_minutes
        self._queue(account_locked_email(user.email, user.display_name, minutes))

    def password_changed(self, user: User) -> None:
        self._queue(password_changed_email(user.email, user.display_name))

    def email_changed(self, user: User, *, old_email: str) -> None:
        body = (
            f"The email address of your Parley account was changed from {old_email} to "
            f"{user.email}. Mails about your account now go to the new address."
        )
        self._queue(_notice(old_email, user.display_name, "Your Parley email was changed", body))

    def mfa_changed(self, user: User, *, enabled: bool) -> None:
        if enabled:
            subject = "Two-factor authentication is on"
            body = (
                "Two-factor authentication was turned on for your Parley account: signing in "
                "now asks for a code from your authenticator app. Keep your recovery codes safe."
            )
        else:
            subject = "Two-factor authentication is off"
            body = (
                "Two-factor authentication was turned off for your Parley account: signing in "
                "now needs only your password."
            )
        self._queue(_notice(user.email, user.display_name, subject, body))
