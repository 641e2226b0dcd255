"""Outgoing mail: a pluggable sender (log or SMTP), background delivery, and the mail templates."""

from app.mail.outbox import Mailer
from app.mail.sender import (
    EmailMessage,
    LogMailSender,
    MailSender,
    SMTPMailSender,
    build_mail_sender,
)

__all__ = [
    "EmailMessage",
    "LogMailSender",
    "MailSender",
    "Mailer",
    "SMTPMailSender",
    "build_mail_sender",
]
