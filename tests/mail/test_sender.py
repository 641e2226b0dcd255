import asyncio
import logging
import smtplib
from email import message_from_bytes, policy
from email.message import EmailMessage as MIMEMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from app.core.config import Settings
from app.mail import (
    EmailMessage,
    LogMailSender,
    Mailer,
    MailSender,
    SMTPMailSender,
    build_mail_sender,
)
from app.mail.templates import (
    account_locked_email,
    password_changed_email,
    password_reset_email,
    reset_link,
    verification_email,
    verify_link,
)
from tests.support.live import free_port
from tests.support.smtp_server import (
    HOST,
    SMTPTestServer,
    extract_token,
    extract_url,
    running_smtp_server,
)
from tests.support.wait import wait_until

FROM = "Parley <no-reply@parley.example>"
SECRET_BODY = "secret-token-in-the-body"


def smtp_sender(port: int, **options: Any) -> SMTPMailSender:
    return SMTPMailSender(
        host=HOST, port=port, sender=FROM, security=options.pop("security", "none"), **options
    )


def message(to: str = "ada@example.com", **fields: Any) -> EmailMessage:
    defaults = {"subject": "Hello", "text": f"Body with {SECRET_BODY}", "html": None}
    return EmailMessage(to=to, **(defaults | fields))


class FlakySender:
    """Fails `failures` times, then hands over to `inner`."""

    def __init__(self, inner: MailSender, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    async def send(self, message: EmailMessage) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("mail server hiccup")
        await self.inner.send(message)


class TestSMTPMailSender:
    async def test_delivers_text_and_html_with_headers(self, smtp_server: SMTPTestServer) -> None:
        mail = message(subject="Grüße", text="Plain text body", html="<p>HTML body</p>")

        await smtp_sender(smtp_server.port).send(mail)

        received = await smtp_server.wait_for(to="ada@example.com")
        assert received.mail_from == "no-reply@parley.example"
        headers = received.message
        assert headers["From"] == FROM
        assert headers["To"] == "ada@example.com"
        assert headers["Subject"] == "Grüße"
        assert parsedate_to_datetime(headers["Date"]).tzinfo is not None
        assert headers["Message-ID"].endswith("@parley.example>")
        assert headers.get_content_type() == "multipart/alternative"
        assert received.text.strip() == "Plain text body"
        assert received.html is not None and received.html.strip() == "<p>HTML body</p>"

    async def test_text_only_mail_is_not_multipart(self, smtp_server: SMTPTestServer) -> None:
        await smtp_sender(smtp_server.port).send(message(text="Just text"))

        received = await smtp_server.wait_for(to="ada@example.com")
        assert received.message.get_content_type() == "text/plain"
        assert received.html is None

    async def test_logs_in_when_user_is_set(self) -> None:
        logins: list[tuple[bytes, bytes]] = []

        def authenticator(*args: Any) -> AuthResult:
            auth_data = args[-1]
            assert isinstance(auth_data, LoginPassword)
            logins.append((auth_data.login, auth_data.password))
            return AuthResult(success=True)

        with running_smtp_server(authenticator=authenticator, auth_require_tls=False) as server:
            sender = smtp_sender(server.port, user="parley", password=SecretStr("s3cret"))
            await sender.send(message())
            await server.wait_for(to="ada@example.com")

        assert logins == [(b"parley", b"s3cret")]

    async def test_starttls_is_required_when_configured(self, smtp_server: SMTPTestServer) -> None:
        # The test server offers no STARTTLS: the sender must refuse rather than send in clear.
        with pytest.raises(smtplib.SMTPNotSupportedError):
            await smtp_sender(smtp_server.port, security="starttls").send(message())
        assert smtp_server.received == []

    async def test_does_not_block_the_event_loop(self, held_smtp_server: SMTPTestServer) -> None:
        """The server answers DATA only when this loop releases it: a send that blocked the loop
        while waiting for the answer would never be released (and fail on its timeout)."""
        sending = asyncio.create_task(smtp_sender(held_smtp_server.port, timeout=5).send(message()))

        await wait_until(lambda: held_smtp_server.holding)
        assert not sending.done()
        held_smtp_server.release()
        await sending

        assert [m.rcpt_tos for m in held_smtp_server.received] == [["ada@example.com"]]


class TestLogMailSender:
    async def test_logs_recipient_subject_and_body(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="parley.mail")

        await LogMailSender(sender=FROM).send(message(subject="Verify"))

        assert "ada@example.com" in caplog.text
        assert "Verify" in caplog.text
        assert SECRET_BODY in caplog.text

    async def test_development_prints_the_link_once_plainly(
        self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        caplog.set_level(logging.INFO, logger="parley.mail")
        link = "http://127.0.0.1:8000/verify-email?token=abc"
        mail = EmailMessage(to="ada@example.com", subject="Verify", text=f"Open {link}", link=link)

        await LogMailSender(sender=FROM, print_links=True).send(mail)

        printed = capsys.readouterr().err
        assert f"Open: {link}\n" in printed and "ada@example.com" in printed
        assert link not in caplog.text  # not a second time, JSON-escaped, in the log

    async def test_can_leave_the_body_out(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="parley.mail")

        await LogMailSender(sender=FROM, log_body=False).send(message())

        assert "ada@example.com" in caplog.text
        assert SECRET_BODY not in caplog.text

    async def test_writes_parseable_eml_to_outbox(self, tmp_path: Path) -> None:
        outbox = tmp_path / "outbox"
        sender = LogMailSender(sender=FROM, outbox_dir=outbox)

        await sender.send(message(subject="Saved", text="Text part", html="<b>HTML part</b>"))

        [path] = outbox.glob("*.eml")
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(parsed, MIMEMessage)
        assert parsed["To"] == "ada@example.com"
        assert parsed["From"] == FROM
        assert parsed["Subject"] == "Saved"
        assert parsed["Message-ID"]
        text, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
        assert isinstance(text, MIMEMessage) and isinstance(html, MIMEMessage)
        assert text.get_content().strip() == "Text part"
        assert html.get_content().strip() == "<b>HTML part</b>"


class TestBuildMailSender:
    def test_smtp_when_host_is_set(self) -> None:
        settings = Settings(
            _env_file=None,
            smtp_host="mail.example",
            smtp_port=465,
            smtp_security="tls",
            smtp_user="parley",
            smtp_password=SecretStr("pw"),
        )

        sender = build_mail_sender(settings)

        assert isinstance(sender, SMTPMailSender)
        assert (sender.host, sender.port, sender.security) == ("mail.example", 465, "tls")
        assert sender.user == "parley"
        assert sender.password is not None and sender.password.get_secret_value() == "pw"
        assert "pw" not in repr(settings)

    def test_log_sender_by_default(self, tmp_path: Path) -> None:
        sender = build_mail_sender(Settings(_env_file=None, mail_outbox_dir=str(tmp_path)))

        assert isinstance(sender, LogMailSender)
        assert sender.outbox_dir == tmp_path
        assert sender.log_body
        assert sender.print_links  # development

    def test_production_without_smtp_warns_and_keeps_tokens_out_of_logs(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        settings = Settings(_env_file=None, environment="production", secret_key="x" * 40)

        sender = build_mail_sender(settings)

        assert isinstance(sender, LogMailSender)
        assert not sender.log_body
        assert "SMTP_HOST is not set" in caplog.text


class TestMailer:
    async def test_send_later_does_not_wait_for_the_server(
        self, held_smtp_server: SMTPTestServer
    ) -> None:
        mailer = Mailer(smtp_sender(held_smtp_server.port))

        mailer.send_later(message())
        await wait_until(lambda: held_smtp_server.holding)

        # The caller goes on while the server still holds the mail.
        assert mailer.pending == 1
        assert held_smtp_server.received == []
        held_smtp_server.release()
        await mailer.drain()
        assert mailer.pending == 0
        assert [m.rcpt_tos for m in held_smtp_server.received] == [["ada@example.com"]]

    async def test_failed_send_is_retried_then_logged_without_body(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="parley.mail")
        mailer = Mailer(smtp_sender(free_port(), timeout=1), retries=2, backoff=0.01)

        mailer.send_later(message(subject="Reset your password"))
        await mailer.drain()

        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(warnings) == 3  # one per attempt: the first and two retries
        [error] = errors
        assert "ada@example.com" in error.getMessage()
        assert "Reset your password" in error.getMessage()
        assert "after 3 attempts" in error.getMessage()
        assert error.__dict__["mail_to"] == "ada@example.com"
        assert SECRET_BODY not in caplog.text

    async def test_retry_delivers_after_transient_failures(
        self, smtp_server: SMTPTestServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        flaky = FlakySender(smtp_sender(smtp_server.port), failures=2)
        mailer = Mailer(flaky, backoff=0.01)

        mailer.send_later(message())
        await mailer.drain()

        assert flaky.calls == 3
        await smtp_server.wait_for(to="ada@example.com")
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    async def test_drain_timeout_abandons_and_logs_pending_mail(
        self, held_smtp_server: SMTPTestServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        mailer = Mailer(smtp_sender(held_smtp_server.port))
        mailer.send_later(message(subject="Too slow"))
        await wait_until(lambda: held_smtp_server.holding)

        await mailer.drain(timeout=0.05)  # the server holds the mail until the test ends

        assert mailer.pending == 0
        assert "abandoned" in caplog.text and "Too slow" in caplog.text
        assert held_smtp_server.received == []

    async def test_send_now_waits_and_raises(self, smtp_server: SMTPTestServer) -> None:
        await Mailer(smtp_sender(smtp_server.port)).send_now(message())
        assert len(smtp_server.received) == 1

        with pytest.raises(OSError):
            await Mailer(smtp_sender(free_port(), timeout=1)).send_now(message())


class TestTemplates:
    BASE = "https://parley.example/"
    EVIL_NAME = '<script>alert("x")</script> & Co'

    def test_links_are_built_from_the_public_base_url(self) -> None:
        assert verify_link("a+b/c=", public_base_url=self.BASE, frontend_url=None) == (
            "https://parley.example/verify-email?token=a%2Bb%2Fc%3D"
        )
        assert reset_link("tok", public_base_url="http://localhost:8000", frontend_url=None) == (
            "http://localhost:8000/reset-password?token=tok"
        )

    def test_a_frontend_url_takes_every_link(self) -> None:
        frontend = "https://app.example.org/parley/"
        assert verify_link("a+b", public_base_url=self.BASE, frontend_url=frontend) == (
            "https://app.example.org/parley/verify-email?token=a%2Bb"
        )
        assert reset_link("tok", public_base_url=self.BASE, frontend_url=frontend) == (
            "https://app.example.org/parley/reset-password?token=tok"
        )

    @pytest.mark.parametrize(
        "mail",
        [
            verification_email("a@x.io", EVIL_NAME, "https://p.example/v?token=t&x=1"),
            password_reset_email("a@x.io", EVIL_NAME, "https://p.example/r?token=t&x=1", 60),
            account_locked_email("a@x.io", EVIL_NAME, 15),
            password_changed_email("a@x.io", EVIL_NAME),
        ],
        ids=["verification", "reset", "locked", "changed"],
    )
    def test_user_values_are_escaped_in_html(self, mail: EmailMessage) -> None:
        assert mail.to == "a@x.io"
        assert mail.html is not None
        assert "<script>" not in mail.html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in mail.html
        assert "token=t&x=1" not in mail.html
        assert self.EVIL_NAME in mail.text  # plain text is shown as-is

    def test_reset_mail_states_its_expiry(self) -> None:
        mail = password_reset_email(
            "a@x.io", "Ada", reset_link("t", public_base_url=self.BASE, frontend_url=None), 60
        )
        assert "60 minutes" in mail.text
        assert mail.html is not None and "60 minutes" in mail.html

    async def test_verification_token_round_trips_through_smtp(
        self, smtp_server: SMTPTestServer
    ) -> None:
        token = "tok_-.~+/="
        link = verify_link(token, public_base_url=self.BASE, frontend_url=None)
        mailer = Mailer(smtp_sender(smtp_server.port))

        mailer.send_later(verification_email("ada@example.com", "Ada", link))
        received = await smtp_server.wait_for(lambda m: "Verify" in m.subject)

        assert extract_url(received.text) == link
        assert extract_token(received.text) == token
        assert received.html is not None and extract_token(received.html) == token
        await mailer.drain()
