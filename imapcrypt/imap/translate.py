"""One place where imapclient, imaplib and socket failures become imapcrypt's own errors.

`TransientError` for what a retry may cure, `CredentialsError`, `TlsError`, `QuotaError` and
`ServerError` for what the user must fix. The server's words are cut short and credentials never
appear in a message.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import imapclient.exceptions

from imapcrypt.errors import (
    CredentialsError,
    ImapcryptError,
    QuotaError,
    ServerError,
    TlsError,
    TransientError,
)

TRANSIENT_CODES = (b"[UNAVAILABLE]", b"[THROTTLED]", b"[INUSE]", b"[LIMIT]", b"[SERVERBUG]")
# Gmail refuses a login beyond its 15 connections per account with these words (and no response code).
TOO_MANY_CONNECTIONS = b"too many simultaneous connections"
IMAP_DISABLED = b"not enabled for imap"


class ThrottledError(TransientError):
    """The server refused a command for now because of its rate limits ([THROTTLED]); retry later."""


class LiteralTooLarge(Exception):
    """The server announced a literal larger than the session accepts (see imap/session.py)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a literal of {size:,} bytes (the limit is {limit:,})")
        self.size = size
        self.limit = limit


# What to tell the user when a server breaks the protocol: nothing on their side can fix it.
FIX_BROKEN_SERVER = "the server broke the IMAP protocol; tell its operator. imapcrypt will retry later"


def _malformed(exc: BaseException) -> str:
    """What was wrong with a response, in words (a missing item, a bad value)."""
    if isinstance(exc, KeyError) and exc.args:
        item = exc.args[0]
        name = item.decode("ascii", "replace") if isinstance(item, bytes) else str(item)
        return f"a response without {name}"
    return f"a malformed response ({str(exc)[:160]})"


@contextmanager
def parsed_response(host: str, what: str) -> Iterator[None]:
    """Turn a response that lacks what IMAP promises, or holds values out of range, into a
    ServerError naming the server and the command: the one place hostile responses end up."""
    try:
        yield
    except (ImapcryptError, OSError):  # OSError: a TLS verification error is a ValueError too
        raise
    except LiteralTooLarge as exc:
        raise ServerError(f"{host} announced {exc} during {what}", FIX_BROKEN_SERVER) from None
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, OverflowError) as exc:
        raise ServerError(f"{host} answered {what} with {_malformed(exc)}", FIX_BROKEN_SERVER) from None


def _server_message(exc: BaseException) -> bytes:
    """The server's own words from an imapclient/imaplib error (its first line, without a b'' repr)."""
    first = exc.args[0] if exc.args else str(exc)
    if isinstance(first, str):
        text = first.encode("utf-8", "replace")
    elif isinstance(first, bytes):
        text = first
    else:
        text = str(first).encode("utf-8", "replace")
    if text.startswith((b"b'", b'b"')):
        text = text[2:].split(text[1:2])[0]
    return text.splitlines()[0] if text else b""


def _unreachable(exc: BaseException) -> str:
    """Why a connection did not open, in words rather than an errno."""
    if isinstance(exc, socket.gaierror):
        return "no server has that name"
    if isinstance(exc, ConnectionRefusedError):
        return "nothing accepts connections on that port"
    if isinstance(exc, TimeoutError):
        return "no answer (a firewall, or the wrong port)"
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__


@contextmanager
def translated_errors(host: str, what: str) -> Iterator[None]:
    """Turn imapclient, imaplib and socket failures during `what` into imapcrypt errors."""
    try:
        # imapclient parses responses as it reads them: what it chokes on is the server's doing.
        with parsed_response(host, what):
            yield
    except ImapcryptError:
        raise
    except imapclient.exceptions.LoginError as exc:
        said = _server_message(exc).lower()
        if TOO_MANY_CONNECTIONS in said:
            raise TransientError(
                f"{host}: too many simultaneous connections for this account",
                "close other mail clients or lower max_connections; it will be retried",
            ) from None
        if IMAP_DISABLED in said:
            raise CredentialsError(
                f"{host}: IMAP is turned off for this account",
                "turn on IMAP in Gmail: Settings > See all settings > Forwarding and POP/IMAP",
            ) from None
        # Provider hints (Gmail's app passwords) are added by connect(), which knows the account.
        raise CredentialsError(f"{host} refused the login", "check the user name and password") from None
    except ssl.SSLCertVerificationError as exc:
        raise TlsError(f"{host}: TLS certificate not trusted: {exc.verify_message}") from None
    except (imaplib.IMAP4.abort, imapclient.exceptions.IMAPClientAbortError) as exc:
        raise TransientError(f"{host}: connection lost during {what}: {exc}", "it will be retried") from None
    except (OSError, EOFError) as exc:
        if what == "connect":
            raise TransientError(
                f"cannot reach {host}: {_unreachable(exc)}", "check host, port and the network"
            ) from None
        raise TransientError(f"{host}: connection lost during {what}: {exc}", "it will be retried") from None
    except (imaplib.IMAP4.error, imapclient.exceptions.IMAPClientError) as exc:
        text = _server_message(exc)
        shown = text.decode("utf-8", "replace")[:200]
        if b"[OVERQUOTA]" in text.upper() or b"quota" in text.lower():
            raise QuotaError(
                f"{host}: mailbox over quota during {what}", "free space on the server; work resumes later"
            ) from None
        if b"[THROTTLED]" in text.upper():
            raise ThrottledError(f"{host}: {what} throttled: {shown}", "it will be retried later") from None
        if any(code in text.upper() for code in TRANSIENT_CODES):
            raise TransientError(f"{host}: {what} refused for now: {shown}", "it will be retried") from None
        raise ServerError(f"{host}: {what} failed: {shown}") from None
