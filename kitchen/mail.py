"""Mail adapter: yagmail over SMTP, or .eml files into a folder when no SMTP host is set."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import smtplib
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Protocol

import yagmail

from kitchen.settings import Mail
from kitchen.validation import email_problem

log = logging.getLogger(__name__)


class MailError(RuntimeError):
    """A send failed; another attempt may succeed (server down, timeout, a 4xx answer)."""


class PermanentMailError(MailError):
    """A mail that can never be sent: an invalid address, a header Kitchen refuses to
    write, or a permanent (5xx) refusal of the recipient or the message."""


def check_message(to: str, subject: str) -> None:
    """Refuse, before any connection, what no server could be right to accept. The
    address rule is the one every address passed where it was typed
    (`validation.email_problem`): one plain address smtplib can send without SMTPUTF8,
    nothing that could add a recipient or a header."""
    if email_problem(to) is not None:
        raise PermanentMailError(f"invalid address {to[:100]!r}")
    if "\r" in subject or "\n" in subject:
        raise PermanentMailError("line break in the subject: header injection refused")


def _permanent(exc: smtplib.SMTPException) -> bool:
    """The server refused this mail for good (5xx to RCPT or DATA). A 5xx to the login
    or the sender is Kitchen's configuration, not the mail's: those are retried."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPDataError) and exc.smtp_code >= 500


def lines(body: str) -> list[str]:
    """yagmail turns the newlines of one text into <br> in the plain-text part as well;
    given one string per line, it joins them with real newlines (and <div>s in HTML)."""
    return body.splitlines()


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str, message_id: str) -> None:
        """Deliver one message or raise (PermanentMailError: never try it again);
        `message_id` is stable across retries."""


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Verify the server's certificate chain and host name (Python's defaults), trusting
    the system's CAs and, if given, those in `ca_file` too."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class Deadline:
    """Cuts an SMTP connection still open after `seconds`, whatever the server does: a
    timeout per read alone lets a server that trickles bytes hold one send for ever, and
    the claim on a mail (`Mail.claim_seconds`) must outlast the longest send."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.smtp: smtplib.SMTP | None = None  # set by the connection as it is made
        self.expired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _cut(self) -> None:
        self.expired = True
        sock = self.smtp.sock if self.smtp is not None else None
        if sock is not None:
            # The plain socket's shutdown, also under TLS: the blocked read returns at once.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _SMTP(smtplib.SMTP):
    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        deadline.smtp = self  # before connecting: the greeting can be cut too
        super().__init__(*args, **kwargs)


class _SMTPSSL(smtplib.SMTP_SSL):
    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        deadline.smtp = self
        super().__init__(*args, **kwargs)


class _Client(yagmail.SMTP):
    """yagmail, connecting through the connections a Deadline can cut."""

    @property
    def connection(self) -> type[smtplib.SMTP]:
        return _SMTPSSL if self.ssl else _SMTP


class SmtpMailer:
    """One attempt per send, cut at `Mail.send_deadline_seconds`.

    yagmail's own `send` tries again twice when the server disconnects, sleeping 3, 6 and
    9 s, so one call could last 18 s plus three exchanges; Kitchen's back-off retries
    instead, and records each attempt.
    """

    def __init__(self, settings: Mail) -> None:
        self.settings = settings
        # Read the CA file once: a missing one stops Kitchen at start, not at the first alert.
        self.context = tls_context(settings.ca_file) if settings.starttls or settings.ssl else None

    def _client(self, deadline: Deadline) -> _Client:
        s = self.settings
        # Without a context, smtplib's TLS checks nothing and the login would go to
        # whoever answers. yagmail hands a dict `smtp_starttls` to starttls(**dict) and
        # extra keyword arguments to the connection (smtplib.SMTP_SSL).
        tls: dict[str, object] = {} if self.context is None else {"context": self.context}
        return _Client(
            user=s.smtp_user or s.sender,
            password=s.smtp_password or None,
            host=s.smtp_host,
            port=s.smtp_port,
            smtp_starttls=tls if s.starttls else False,
            smtp_ssl=s.ssl,
            smtp_skip_login=not s.smtp_user,
            soft_email_validation=False,
            timeout=s.timeout_seconds,
            deadline=deadline,
            **(tls if s.ssl else {}),
        )

    def send(self, to: str, subject: str, body: str, message_id: str) -> None:
        check_message(to, subject)
        s = self.settings
        deadline = Deadline(s.send_deadline_seconds)
        client = self._client(deadline)
        recipients, text = client.prepare_send(
            to=to, subject=subject, contents=lines(body), message_id=message_id
        )
        with deadline:
            try:
                client.login()  # connect, TLS, AUTH
                refused = client.smtp.sendmail(client.user, recipients, text)
            except ssl.SSLCertVerificationError as exc:
                # Nothing was sent and no password went out; the mail stays due.
                log.error(
                    "SMTP server %s:%s presented a certificate Kitchen does not trust (%s); "
                    "not logging in. A private CA goes in [mail] ca_file.",
                    s.smtp_host,
                    s.smtp_port,
                    exc.verify_message,
                )
                raise
            except Exception as exc:
                if deadline.expired:
                    raise MailError(f"SMTP exchange cut after {deadline.seconds:g} s") from exc
                if isinstance(exc, smtplib.SMTPException) and _permanent(exc):
                    raise PermanentMailError(f"SMTP server refused the mail: {exc}") from exc
                raise
            finally:
                _close(client)
        if refused:
            raise MailError(f"SMTP server refused {refused}")


def _close(client: _Client) -> None:
    """QUIT, then close: after an accepted mail, a failed goodbye changes nothing."""
    with contextlib.suppress(Exception):
        client.close()
    if client.smtp is not None:
        client.smtp.close()


class FolderMailer:
    """Writes each message as `<folder>/<message-id>.eml`: a resend overwrites, never doubles."""

    def __init__(self, settings: Mail) -> None:
        self.settings = settings
        self.folder = Path(settings.folder)

    def send(self, to: str, subject: str, body: str, message_id: str) -> None:
        check_message(to, subject)
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
