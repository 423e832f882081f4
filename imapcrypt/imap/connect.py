"""Opening a session: verified TLS (implicit or STARTTLS), login (password or XOAUTH2), probes.

TLS is always verified; `doctor` alone fetches a certificate without trusting it, to show it.
"""

from __future__ import annotations

import hashlib
import imaplib
import logging
import socket
import ssl
from collections.abc import Callable
from contextlib import suppress

import imapclient
import imapclient.exceptions

from imapcrypt.config.model import Account, is_loopback
from imapcrypt.errors import CredentialsError, ServerError, TlsError
from imapcrypt.imap.session import Session, bound_literals, literal_limit
from imapcrypt.imap.slots import CONNECTION_SLOTS
from imapcrypt.imap.translate import translated_errors

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 60.0
# Where a refused login deserves the hint that Gmail wants an app password, not the account's own.
GMAIL_HOSTS = (".gmail.com", ".googlemail.com")


def certificate_fingerprint(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint as colon-separated upper-case hex, as openssl prints it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _open_client(account: Account, context: ssl.SSLContext) -> imapclient.IMAPClient:
    """A connection to the account's server, secured with `context` (implicit TLS or STARTTLS)."""
    client = imapclient.IMAPClient(
        account.host,
        port=account.port,
        ssl=account.security == "tls",
        ssl_context=context,
        timeout=TIMEOUT_SECONDS,
    )
    client.normalise_times = False
    # imaplib leaves Nagle on: a command written in parts (APPEND's line, then its literal; two
    # pipelined commands) would wait for the server's ACK of the first part, up to a delayed ACK.
    with suppress(OSError):
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if account.security == "starttls":
        try:
            client.starttls(context)
        except BaseException:
            with suppress(OSError):
                client.shutdown()
            raise
    return client


def tls_context(account: Account) -> ssl.SSLContext:
    """A verifying TLS context: the system's trust store, plus the account's `ca_file` if set."""
    context = ssl.create_default_context(cafile=str(account.ca_file) if account.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _peer_fingerprint(account: Account) -> str:
    """The SHA-256 fingerprint of the certificate the server presents, fetched without trusting it."""
    der = peer_certificate(account)
    return certificate_fingerprint(der) if der else ""


def connect(account: Account, password: Callable[[], str], token: Callable[[], str] | None = None) -> Session:
    """Open, secure and log in a session for `account`.

    TLS is always verified (implicit TLS or STARTTLS); `plain` is refused unless the host is loopback.
    `password` (or `token` for XOAUTH2) is called only once the connection is secure. A token the
    server rejects is asked for once more (a token command refreshes an expired one) before giving up.
    At most `account.max_connections` sessions per account are open at once (TransientError beyond).
    """
    if account.security == "plain" and not is_loopback(account.host):
        raise ServerError(
            f"refusing a cleartext connection to {account.host}", "use security = 'tls' or 'starttls'"
        )
    CONNECTION_SLOTS.take(account)
    try:
        session = _connect(account, password, token)
    except BaseException:
        CONNECTION_SLOTS.give_back(account)
        raise
    session._slot_held = True
    return session


def _oauth2_login(client: imapclient.IMAPClient, account: Account, token: Callable[[], str]) -> None:
    try:
        with translated_errors(account.host, "login"):
            client.oauth2_login(account.username, token())
    except CredentialsError:
        log.info("%s rejected the access token; asking the token command for a fresh one", account.host)
        with translated_errors(account.host, "login"):
            client.oauth2_login(account.username, token())


def _connect(account: Account, password: Callable[[], str], token: Callable[[], str] | None) -> Session:
    context = tls_context(account)
    client: imapclient.IMAPClient | None = None
    try:
        with translated_errors(f"{account.host}:{account.port}", "connect"):
            client = _open_client(account, context)
        bound_literals(client, literal_limit(account))  # from the login on; imaplib read the greeting
        if token is not None:
            _oauth2_login(client, account, token)
        else:
            try:
                with translated_errors(account.host, "login"):
                    client.login(account.username, password())
            except CredentialsError as exc:
                if account.host.lower().endswith(GMAIL_HOSTS) and "app password" not in exc.fix:
                    raise CredentialsError(exc.message, f"{exc.fix} (Gmail needs an app password)") from None
                raise
        return Session(client, account)
    except TlsError as exc:
        fingerprint = _peer_fingerprint(account)
        raise TlsError(
            f"{exc.message}; certificate SHA-256 {fingerprint}",
            "if you trust this server, put its CA certificate in ca_file",
            fingerprint,
        ) from None
    except BaseException:
        if client is not None:
            with suppress(OSError):
                client.shutdown()
        raise


def unreachable(host: str, port: int, timeout: float = 10.0) -> str | None:
    """Why nothing answers at host:port, in words (unknown host, closed port, no answer), or None."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return f"there is no server called {host!r} (the name does not resolve)"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return f"{host} is there, but nothing accepts connections on port {port}"
    except TimeoutError:
        return f"{host} did not answer on port {port} within {timeout:.0f} seconds"
    except OSError as exc:
        return f"{host} cannot be reached on port {port} ({exc.strerror or type(exc).__name__})"


def peer_certificate(account: Account) -> bytes:
    """The DER certificate the server presents (implicit TLS or after STARTTLS), fetched without
    trusting it, for `doctor` to show; b"" for `plain` or when no TLS connection can be made."""
    if account.security == "plain":
        return b""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        client = _open_client(account, unverified)
        try:
            sock = client._imap.sock
            der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        finally:
            client.shutdown()
    except (OSError, imaplib.IMAP4.error, imapclient.exceptions.IMAPClientError):
        return b""
    return der or b""
