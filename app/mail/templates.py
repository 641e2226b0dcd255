"""The mails Parley sends, as plain text with a simple HTML alternative.

Links come from settings, or from the request's Host header only when that host is one of
ALLOWED_HOSTS (app/auth/notifications.py), so a forged Host cannot poison a link. Every link
opens a page of the frontend, which POSTs the token to the API (a GET must not change an account):
- verification: `{frontend}/verify-email?token=...`;
- password reset: `{frontend}/reset-password?token=...`.
The frontend is `frontend_url` when set (a frontend on its own origin), else Parley's own web
client at the address the user signed up from (an allowed host) or under `public_base_url`.
"""

from html import escape
from urllib.parse import urlencode

from app.mail.sender import EmailMessage


def _link(base_url: str, path: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{path}?{urlencode({'token': token})}"


def verify_link(token: str, *, public_base_url: str, frontend_url: str | None) -> str:
    return _link(frontend_url or public_base_url, "/verify-email", token)


def reset_link(token: str, *, public_base_url: str, frontend_url: str | None) -> str:
    return _link(frontend_url or public_base_url, "/reset-password", token)


def _html(display_name: str, paragraphs: list[str], *, link: str | None = None) -> str:
    """A minimal HTML body; `paragraphs` are trusted template text, the name and link escaped."""
    parts = [f"<p>Hi {escape(display_name)},</p>"]
    parts += [f"<p>{paragraph}</p>" for paragraph in paragraphs]
    if link is not None:
        parts.append(f'<p><a href="{escape(link)}">{escape(link)}</a></p>')
    parts.append("<p>— Parley</p>")
    return "<!doctype html>\n<html><body>\n" + "\n".join(parts) + "\n</body></html>\n"


def verification_email(to: str, display_name: str, link: str) -> EmailMessage:
    intro = "Please confirm your email address by opening this link:"
    ignore = "If you did not create a Parley account, you can ignore this mail."
    return EmailMessage(
        to=to,
        subject="Verify your email address",
        text=f"Hi {display_name},\n\n{intro}\n\n{link}\n\n{ignore}\n\n— Parley\n",
        html=_html(display_name, [intro, ignore], link=link),
        link=link,
    )


def password_reset_email(
    to: str, display_name: str, link: str, expires_minutes: int
) -> EmailMessage:
    intro = "Someone asked to reset the password of your Parley account. To choose a new one, open:"
    expiry = (
        f"The link works once and expires in {expires_minutes} minutes. If you did not ask for "
        "this, ignore this mail: your password stays as it is."
    )
    return EmailMessage(
        to=to,
        subject="Reset your Parley password",
        text=f"Hi {display_name},\n\n{intro}\n\n{link}\n\n{expiry}\n\n— Parley\n",
        html=_html(display_name, [intro, expiry], link=link),
        link=link,
    )


def account_locked_email(to: str, display_name: str, minutes: int) -> EmailMessage:
    body = (
        f"Your Parley account was locked for {minutes} minutes after too many failed sign-in "
        "attempts. If that was not you, someone may be guessing your password: consider "
        "resetting it."
    )
    return EmailMessage(
        to=to,
        subject="Your Parley account was locked",
        text=f"Hi {display_name},\n\n{body}\n\n— Parley\n",
        html=_html(display_name, [body]),
    )


def password_changed_email(to: str, display_name: str) -> EmailMessage:
    body = (
        "The password of your Parley account was just changed. If you did not do this, reset "
        "your password with “Forgot password” on the sign-in page right away."
    )
    return EmailMessage(
        to=to,
        subject="Your Parley password was changed",
        text=f"Hi {display_name},\n\n{body}\n\n— Parley\n",
        html=_html(display_name, [body]),
    )
