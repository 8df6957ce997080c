"""SMTP over TLS: Kitchen logs in only to a server whose certificate it can verify."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from app import Kitchen
from kitchen.db import session
from kitchen.models import Notification
from tests.helpers import SmtpServer, eventually, free_port, raise_onion_alert

LOGIN = {"smtp_user": "alerts@example.com", "smtp_password": "s3cret"}


def server_context(ca: trustme.CA, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name, common_name=name).configure_cert(context)
    return context


@pytest.fixture
def company_ca(tmp_path: Path) -> tuple[trustme.CA, str]:
    """A private CA, as a company runs one, and its PEM file for `[mail] ca_file`."""
    ca = trustme.CA()
    pem = tmp_path / "company-ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return ca, str(pem)


@pytest.fixture(params=["starttls", "ssl"])
def tls_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tls_server(tls_mode: str) -> Iterator[Callable[[ssl.SSLContext], SmtpServer]]:
    servers: list[SmtpServer] = []

    def start(context: ssl.SSLContext) -> SmtpServer:
        server = SmtpServer(free_port(), context, implicit_tls=tls_mode == "ssl", auth=True)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def notification() -> Notification | None:
    with session():
        return Notification.get_or_none()


@pytest.mark.parametrize("ca_trusted", [False, True], ids=["unknown-ca", "known-ca"])
def test_a_certificate_for_another_name_gets_no_login_and_the_mail_waits(
    make_kitchen: Callable[..., Kitchen],
    tls_server: Callable[[ssl.SSLContext], SmtpServer],
    tls_mode: str,
    company_ca: tuple[trustme.CA, str],
    ca_trusted: bool,
) -> None:
    # Someone in between answers for 127.0.0.1 with a certificate for another name,
    # issued by a CA Kitchen has never heard of (or by the trusted one: the name counts).
    ca, pem = company_ca if ca_trusted else (trustme.CA(), "")
    server = tls_server(server_context(ca, "evil.invalid"))
    kitchen = make_kitchen(mail={"smtp_port": server.port, tls_mode: True, "ca_file": pem, **LOGIN})
    raise_onion_alert(kitchen)

    # Tried, refused, and tried again later (the sender looks every second); or sent.
    row = eventually(lambda: (n := notification()) and (n.attempts >= 2 or n.sent_at) and n)
    assert row.sent_at is None and row.failed_at is None  # still due: it will be retried
    assert "CERTIFICATE_VERIFY_FAILED" in str(row.last_error)
    assert server.inbox.logins == []  # the password never left Kitchen
    assert server.messages == []


def test_a_server_certified_by_the_ca_file_gets_the_mail(
    make_kitchen: Callable[..., Kitchen],
    tls_server: Callable[[ssl.SSLContext], SmtpServer],
    tls_mode: str,
    company_ca: tuple[trustme.CA, str],
) -> None:
    ca, pem = company_ca
    server = tls_server(server_context(ca, "127.0.0.1"))
    kitchen = make_kitchen(mail={"smtp_port": server.port, tls_mode: True, "ca_file": pem, **LOGIN})
    raise_onion_alert(kitchen)

    eventually(lambda: len(server.messages) == 1)
    assert server.messages[0]["To"] == "merchant@example.com"
    assert server.inbox.logins != []
    # The row records the send just after the server took the mail: wait for it.
    row = eventually(lambda: (found := notification()) is not None and found.sent_at and found)
    assert row.attempts == 1
