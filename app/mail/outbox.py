"""Background delivery: a request schedules a mail and answers without waiting for the server."""

import asyncio
import logging

from app.core.background import BackgroundJobs
from app.mail.sender import EmailMessage, MailSender

logger = logging.getLogger("parley.mail")


class Mailer:
    """Wraps a MailSender: `send_later` in requests, `drain` at shutdown, `send_now` in the CLI."""

    def __init__(self, sender: MailSender, *, retries: int = 3, backoff: float = 0.5) -> None:
        self.sender = sender
        self.retries = retries
        self.backoff = backoff
        # Its own queue, drained at shutdown after the app's jobs (which queue mails).
        self._jobs = BackgroundJobs()

    def send_later(self, message: EmailMessage) -> None:
        """Schedule delivery in the background; failures are retried, then logged."""
        self._jobs.spawn("mail", lambda: self._deliver(message))

    async def send_now(self, message: EmailMessage) -> None:
        """Deliver once and wait; errors propagate to the caller."""
        await self.sender.send(message)

    async def drain(self, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait for pending sends; those still running after `timeout` seconds are cancelled."""
        await self._jobs.drain(timeout)

    @property
    def pending(self) -> int:
        return self._jobs.pending

    async def _deliver(self, message: EmailMessage) -> None:
        # Recipient and subject only: bodies carry single-use tokens and stay out of error logs.
        extra = {"mail_to": message.to, "mail_subject": message.subject}
        attempts = self.retries + 1
        error: Exception | None = None
        try:
            for attempt in range(1, attempts + 1):
                if attempt > 1:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 2))
                try:
                    await self.sender.send(message)
                    return
                except Exception as exc:
                    error = exc
                    logger.warning(
                        "Mail to %s (%r) failed, attempt %d of %d: %r",
                        message.to,
                        message.subject,
                        attempt,
                        attempts,
                        exc,
                        extra=extra,
                    )
        except asyncio.CancelledError:
            logger.error(
                "Mail to %s (%r) abandoned before delivery",
                message.to,
                message.subject,
                extra=extra,
            )
            raise
        logger.error(
            "Mail to %s (%r) not delivered after %d attempts: %r",
            message.to,
            message.subject,
            attempts,
            error,
            extra=extra,
        )
