"""Mail adapter: yagmail over SMTP, or .eml files into a folder when no SMTP host is set."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

import yagmail

from kitchen.settings import Mail


class MailError(RuntimeError):
    pass


def lines(body: str) -> list[str]:
    """yagmail turns the newlines of one text into <br> in the plain-text part as well;
    given one string per line, it joins them with real newlines (and <div>s in HTML)."""
    return body.splitlines()


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str, message_id: str) -> None:
        """Deliver one message or raise; `message_id` is stable across retries."""


class SmtpMailer:
    def __init__(self, settings: Mail) -> None:
        self.settings = settings

    def _client(self) -> yagmail.SMTP:
        s = self.settings
        return yagmail.SMTP(
            user=s.smtp_user or s.sender,
            password=s.smtp_password or None,
            host=s.smtp_host,
            port=s.smtp_port,
            smtp_starttls=s.starttls,
            smtp_ssl=s.ssl,
            smtp_skip_login=not s.smtp_user,
            soft_email_validation=False,
            timeout=s.timeout_seconds,
        )

    def send(self, to: str, subject: str, body: str, message_id: str) -> None:
        client = self._client()
        try:
            # yagmail returns False (rather than raising) when the server kept
            # disconnecting; anything but a dict of refused recipients is a failure.
            result = client.send(
                to=to, subject=subject, contents=lines(body), message_id=message_id
            )
            if result is False:
                raise MailError(f"SMTP server {self.settings.smtp_host} disconnected")
            if result:
                raise MailError(f"SMTP server refused {result}")
        finally:
            client.close()


class FolderMailer:
    """Writes each message as `<folder>/<message-id>.eml`: a resend overwrites, never doubles."""

    def __init__(self, settings: Mail) -> None:
        self.settings = settings
        self.folder = Path(settings.folder)

    def send(self, to: str, subject: str, body: str, message_id: str) -> None:
        client = yagmail.SMTP(
            user=self.settings.sender, smtp_skip_login=True, soft_email_validation=False
        )
        _, text = client.prepare_send(
            to=to, subject=subject, contents=lines(body), message_id=message_id
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9@._-]", "", message_id) + ".eml"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.folder / name)  # atomic: a reader never sees half a mail


def make_mailer(settings: Mail) -> Mailer:
    return SmtpMailer(settings) if settings.smtp_host else FolderMailer(settings)
