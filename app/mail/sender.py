"""The mail sender interface and its two implementations: the log (development) and SMTP."""

import logging
import secrets
import smtplib
import ssl
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage as MIMEMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Literal, Protocol

import anyio.to_thread
from pydantic import SecretStr

from app.core.config import Settings

logger = logging.getLogger("parley.mail")

SMTPSecurity = Literal["starttls", "tls", "none"]


@dataclass(frozen=True)
class EmailMessage:
    """One mail to one recipient: a plain-text body and an optional HTML alternative."""

    to: str
    subject: str
    text: str
    html: str | None = None
    # The one link a person must open (verification, reset): printed plainly on the console by
    # the development sender, so nobody has to dig it out of a JSON log line.
    link: str | None = None


class MailSender(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver the message or raise."""
        ...


def build_mime(message: EmailMessage, *, sender: str) -> MIMEMessage:
    """The MIME form of a message: text, plus an HTML alternative when there is one."""
    mime = MIMEMessage()
    mime["From"] = sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(datetime.now(UTC))
    # make_msgid() would otherwise ask DNS for this host's FQDN, which can stall for seconds.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    mime["Message-ID"] = make_msgid(domain=domain)
    mime.set_content(message.text)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    return mime


class LogMailSender:
    """Development sender: logs each mail, body included, and can keep .eml copies in a folder."""

    def __init__(
        self,
        *,
        sender: str,
        outbox_dir: str | Path | None = None,
        log_body: bool = True,
        print_links: bool = False,
    ) -> None:
        self.sender = sender
        self.outbox_dir = Path(outbox_dir) if outbox_dir is not None else None
        self.log_body = log_body
        self.print_links = print_links

    async def send(self, message: EmailMessage) -> None:
        mime = build_mime(message, sender=self.sender)
        extra = {"mail_to": message.to, "mail_subject": message.subject}
        printed = self.print_links and self.log_body and message.link is not None
        if printed:
            # Once, plainly, where the person running `make run` looks: not as a JSON string
            # with escaped newlines in the log (whose line then leaves the body out).
            sys.stderr.write(
                f"\n  Mail to {message.to}: {message.subject}\n  Open: {message.link}\n\n"
            )
            sys.stderr.flush()
        # In development this log line is the inbox: the body carries the verify/reset link.
        body = (
            "(link printed above)"
            if printed
            else message.text
            if self.log_body
            else "(body not logged)"
        )
        logger.info("Mail to %s: %s\n\n%s", message.to, message.subject, body, extra=extra)
        if self.outbox_dir is not None:
            path = await anyio.to_thread.run_sync(self._write, mime)
            logger.info("Mail written to %s", path, extra=extra)

    def _write(self, mime: MIMEMessage) -> Path:
        assert self.outbox_dir is not None
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.eml"
        path = self.outbox_dir / name
        path.write_bytes(mime.as_bytes())
        return path


class SMTPMailSender:
    """Sends through an SMTP server with the stdlib client, run in a worker thread."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        security: SMTPSecurity = "starttls",
        user: str | None = None,
        password: SecretStr | None = None,
        timeout: float = 10,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.security = security
        self.user = user
        self.password = password
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        mime = build_mime(message, sender=self.sender)
        # The thread cannot be interrupted; abandoning it lets a cancelled send (shutdown, drain
        # timeout) return at once while the socket timeout bounds the thread itself.
        await anyio.to_thread.run_sync(self._deliver, mime, abandon_on_cancel=True)

    def _deliver(self, mime: MIMEMessage) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.security == "tls":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.security == "starttls":
                # Raises SMTPNotSupportedError if the server does not offer it: never downgrade.
                client.starttls(context=context)
            if self.user is not None:
                password = self.password.get_secret_value() if self.password is not None else ""
                client.login(self.user, password)
            client.send_message(mime)


def build_mail_sender(settings: Settings) -> MailSender:
    """SMTP when SMTP_HOST is set, else the log sender."""
    if settings.smtp_host:
        return SMTPMailSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            security=settings.smtp_security,
            user=settings.smtp_user,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout,
        )
    production = settings.environment == "production"
    if production:
        logger.warning(
            "SMTP_HOST is not set: mails are not delivered, only logged without their bodies "
            "(they carry verification and reset tokens)"
        )
    return LogMailSender(
        sender=settings.smtp_from,
        outbox_dir=settings.mail_outbox_dir,
        log_body=not production,
        print_links=settings.environment == "development",
    )
