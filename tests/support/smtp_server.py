"""A real SMTP server in-process (aiosmtpd), collecting what it receives for tests to read."""

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.live import free_port
from tests.support.wait import wait_until

HOST = "127.0.0.1"
URL_RE = re.compile(r"https?://[^\s<>\"']+")


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
    """Parses every message it accepts. With `hold`, DATA is not answered until `released` is
    set, like a mail server that takes its time: the test decides when it answers."""

    hold: bool = False
    received: list[ReceivedMail] = field(default_factory=list)
    # threading, not asyncio: the server's loop runs in a thread of its own.
    holding: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.hold:
            self.holding.set()
            await asyncio.to_thread(self.released.wait)
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

    @property
    def holding(self) -> bool:
        """A held server has a mail in DATA, waiting for `release()`."""
        return self.handler.holding.is_set()

    def release(self) -> None:
        """A held server answers the DATA it holds, and every later one at once."""
        self.handler.released.set()

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

        def first_match() -> ReceivedMail | None:
            return next((mail for mail in list(self.received) if matches(mail)), None)

        def seen() -> str:
            return f"received: {[(m.rcpt_tos, m.subject) for m in self.received]}"

        return await wait_until(first_match, timeout=timeout, message=seen)


@contextmanager
def running_smtp_server(*, hold: bool = False, **smtp_options: Any) -> Iterator[SMTPTestServer]:
    """Start a server on a free loopback port; `smtp_options` go to aiosmtpd's SMTP class.
    (Its Controller cannot be given port 0, hence `free_port`.)"""
    handler = CollectingHandler(hold=hold)
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, **smtp_options)
    controller.start()
    try:
        yield SMTPTestServer(handler, port)
    finally:
        handler.released.set()  # a held DATA must not keep the server's thread from stopping
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
