"""Mail adapter: yagmail over SMTP, or .eml files into a folder when no SMTP host is set."""

from __future__ import annotations

import logging
import os
import re
import ssl
from pathlib import Path
from typing import Protocol

import yagmail

from kitchen.settings import Mail

log = logging.getLogger(__name__)


class MailError(RuntimeError):
    pass


def lines(body: str) -> list[str]:
    """yagmail turns the newlines of one text into <br> in the plain-text part as well;
    given one string per line, it joins them with real newlines (and <div>s in HTML)."""
    return body.splitlines()


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str, message_id: str) -> None:
        """Deliver one message or raise; `message_id` is stable across retries."""


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Verify the server's certificate chain and host name (Python's defaults), trusting
    the system's CAs and, if given, those in `ca_file` too."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class SmtpMailer:
    def __init__(self, settings: Mail) -> None:
        self.settings = settings
        # Read the CA file once: a missing one stops Kitchen at start, not at the first alert.
        self.context = tls_context(settings.ca_file) if settings.starttls or settings.ssl else None

    def _client(self) -> yagmail.SMTP:
        s = self.settings
        # Without a context, smtplib's TLS checks nothing and the login would go to
        # whoever answers. yagmail hands a dict `smtp_starttls` to starttls(**dict) and
        # extra keyword arguments to smtplib.SMTP_SSL.
        tls: dict[str, object] = {} if self.context is None else {"context": self.context}
        return yagmail.SMTP(
            user=s.smtp_user or s.sender,
            password=s.smtp_password or None,
            host=s.smtp_host,
            port=s.smtp_port,
            smtp_starttls=tls if s.starttls else False,
            smtp_ssl=s.ssl,
            smtp_skip_login=not s.smtp_user,
            soft_email_validation=False,
            timeout=s.timeout_seconds,
            **(tls if s.ssl else {}),
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
        except ssl.SSLCertVerificationError as exc:
            # Nothing was sent and no password went out; the mail stays due.
            log.error(
                "SMTP server %s:%s presented a certificate Kitchen does not trust (%s); "
                "not logging in. A private CA goes in [mail] ca_file.",
                self.settings.smtp_host,
                self.settings.smtp_port,
                exc.verify_message,
            )
            raise
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
