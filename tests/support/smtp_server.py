"""A real SMTP server in-process (aiosmtpd), collecting what it receives for tests to read."""

import asyncio
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"
URL_RE = re.compile(r"https?://[^\s<>\"']+")


def free_port() -> int:
    """A port nothing listens on (aiosmtpd's Controller cannot be given port 0)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        return cast(EmailMessage, part).get_content() if part is not None else ""

    @property
    def html(self) -> str | None:
        part = self.message.get_body(("html",))
        return cast(EmailMessage, part).get_content() if part is not None else None


@dataclass
class CollectingHandler:
    """Parses every message it accepts; `delay` makes DATA slow, like a sluggish mail server."""

    delay: float = 0
    received: list[ReceivedMail] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        raw = cast(bytes, envelope.original_content)
        message = cast(EmailMessage, message_from_bytes(raw, policy=policy.default))
        self.received.append(
            ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message)
        )
        return "250 Message accepted for delivery"


class SMTPTestServer:
    """Runs in its own thread and loop; tests poll `received` from theirs."""

    def __init__(self, handler: CollectingHandler, port: int) -> None:
        self.handler = handler
        self.host = HOST
        self.port = port

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    async def wait_for(
        self,
        predicate: Callable[[ReceivedMail], bool] | None = None,
        *,
        to: str | None = None,
        timeout: float = 5,
    ) -> ReceivedMail:
        """The first received mail matching `predicate` and/or addressed `to`, once it arrives."""

        def matches(mail: ReceivedMail) -> bool:
            if to is not None and to not in mail.rcpt_tos:
                return False
            return predicate is None or predicate(mail)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for mail in list(self.received):
                if matches(mail):
                    return mail
            if loop.time() >= deadline:
                seen = [(m.rcpt_tos, m.subject) for m in self.received]
                raise AssertionError(f"no matching mail within {timeout}s; received: {seen}")
            await asyncio.sleep(0.01)


@contextmanager
def running_smtp_server(*, delay: float = 0, **smtp_options: Any) -> Iterator[SMTPTestServer]:
    """Start a server on a free loopback port; `smtp_options` go to aiosmtpd's SMTP class."""
    handler = CollectingHandler(delay=delay)
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, **smtp_options)
    controller.start()
    try:
        yield SMTPTestServer(handler, port)
    finally:
        controller.stop()


def extract_url(body: str) -> str:
    """The first http(s) URL in a mail body."""
    match = URL_RE.search(body)
    if match is None:
        raise AssertionError(f"no URL in mail body: {body!r}")
    return match.group(0).rstrip(".,;)")


def extract_token(body: str) -> str:
    """The `token` query parameter of the first URL in a mail body."""
    return parse_qs(urlsplit(extract_url(body)).query)["token"][0]
