"""The TLS Dovecot: verified when trusted, refused when not, and what it allows before STARTTLS."""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable
from contextlib import suppress

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.fixtures.dovecot import DovecotServer
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.tls import TlsDovecot, certificate_fingerprint, plain_hex


@pytest.fixture
def tls_mailbox(tls_dovecot: TlsDovecot, mailbox_on: Callable[[DovecotServer], Mailbox]) -> Mailbox:
    return mailbox_on(tls_dovecot.server)


def _logged_in(client: IMAPClient, mailbox: Mailbox) -> bool:
    try:
        answer: bytes = client.login(mailbox.user, mailbox.password)
        return answer == b"Logged in"
    finally:
        client.logout()


def test_fingerprint_is_the_served_certificate_as_openssl_shows_it(tls_dovecot: TlsDovecot) -> None:
    with (
        socket.create_connection((tls_dovecot.host, tls_dovecot.tls_port), timeout=10) as sock,
        tls_dovecot.trusting_context().wrap_socket(sock, server_hostname=tls_dovecot.host) as tls,
    ):
        served = tls.getpeercert(binary_form=True)
    assert served is not None
    assert tls_dovecot.fingerprint_sha256_hex == hashlib.sha256(served).hexdigest()
    assert certificate_fingerprint(served) == tls_dovecot.fingerprint_sha256
    assert plain_hex("AB:0C") == "ab0c"
    openssl = shutil.which("openssl")
    if openssl is not None:  # the colon form is what users compare against openssl's output
        shown = subprocess.run(
            [openssl, "x509", "-in", str(tls_dovecot.cert_path), "-noout", "-fingerprint", "-sha256"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert shown.strip().split("=", 1)[1] == tls_dovecot.fingerprint_sha256


def test_default_context_refuses_the_self_signed_certificate(tls_dovecot: TlsDovecot) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed"):
        IMAPClient(tls_dovecot.host, port=tls_dovecot.tls_port, ssl=True, timeout=10)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_trusting_context_logs_in_over_implicit_tls(
    tls_dovecot: TlsDovecot, tls_mailbox: Mailbox, host: str
) -> None:
    client = IMAPClient(
        host, port=tls_dovecot.tls_port, ssl=True, ssl_context=tls_dovecot.trusting_context(), timeout=10
    )
    assert _logged_in(client, tls_mailbox)


def test_trusting_context_still_checks_the_host_name(tls_dovecot: TlsDovecot) -> None:
    context = tls_dovecot.trusting_context()
    with (
        socket.create_connection((tls_dovecot.host, tls_dovecot.tls_port), timeout=10) as sock,
        pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
    ):
        context.wrap_socket(sock, server_hostname="imap.example.org").close()


def test_starttls_on_the_plain_port(tls_dovecot: TlsDovecot, tls_mailbox: Mailbox) -> None:
    client = IMAPClient(tls_dovecot.host, port=tls_dovecot.starttls_port, ssl=False, timeout=10)
    assert b"STARTTLS" in client.capabilities()
    client.starttls(tls_dovecot.trusting_context())
    assert _logged_in(client, tls_mailbox)


def test_starttls_with_the_default_context_fails_verification(tls_dovecot: TlsDovecot) -> None:
    client = IMAPClient(tls_dovecot.host, port=tls_dovecot.starttls_port, ssl=False, timeout=10)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(ssl.create_default_context())
    finally:
        # The failed handshake already closed the socket under imaplib; this closes the rest.
        with suppress(OSError):
            client.shutdown()


def test_strict_port_refuses_login_before_starttls(tls_dovecot: TlsDovecot, tls_mailbox: Mailbox) -> None:
    client = IMAPClient(tls_dovecot.host, port=tls_dovecot.strict_port, ssl=False, timeout=10)
    try:
        assert b"LOGINDISABLED" in client.capabilities()
        with pytest.raises(LoginError):
            client.login(tls_mailbox.user, tls_mailbox.password)
    finally:
        client.shutdown()
    upgraded = IMAPClient(tls_dovecot.host, port=tls_dovecot.strict_port, ssl=False, timeout=10)
    upgraded.starttls(tls_dovecot.trusting_context())
    assert _logged_in(upgraded, tls_mailbox)


def test_loopback_client_may_log_in_before_starttls(tls_dovecot: TlsDovecot, tls_mailbox: Mailbox) -> None:
    # Dovecot 2.3 calls a client on the server's own address "secured", even with ssl = required:
    # refusing cleartext on loopback is the client's job, not this server's
    # (docs/design.md#connecting-and-signing-in).
    client = IMAPClient(tls_dovecot.host, port=tls_dovecot.starttls_port, ssl=False, timeout=10)
    assert b"LOGINDISABLED" not in client.capabilities()
    assert _logged_in(client, tls_mailbox)
