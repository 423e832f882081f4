"""An IMAP session over imapclient: verified TLS, capabilities, and the few commands the engine uses.

The engine asks this layer questions ("can you expunge one UID?") and never sniffs capability strings
itself. Every imapclient or socket failure leaves this module as an `imapcrypt.errors` exception:
`TransientError` for what a retry may cure, `CredentialsError`, `TlsError` and `ServerError` for what
the user must fix. Credentials never appear in a message or a log line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import imaplib
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import imapclient
import imapclient.exceptions
from imapclient.imap_utf7 import decode as decode_utf7

from imapcrypt.config import Account, is_loopback
from imapcrypt.errors import (
    CredentialsError,
    ImapcryptError,
    QuotaError,
    ServerError,
    TlsError,
    TransientError,
)

log = logging.getLogger(__name__)

APPENDUID = re.compile(rb"\[APPENDUID (\d+) ([\d:,]+)\]", re.IGNORECASE)
TRANSIENT_CODES = (b"[UNAVAILABLE]", b"[THROTTLED]", b"[INUSE]", b"[LIMIT]", b"[SERVERBUG]")
TIMEOUT_SECONDS = 60.0
# Gmail refuses a login beyond its 15 connections per account with these words (and no response code).
TOO_MANY_CONNECTIONS = b"too many simultaneous connections"
IMAP_DISABLED = b"not enabled for imap"
# A throttled command (NO [THROTTLED]) is retried on the same connection after these pauses; then the
# error goes up and the caller resumes later. Gmail lifts short-term throttling within minutes.
THROTTLE_PAUSES = (30.0, 120.0, 300.0)


class ThrottledError(TransientError):
    """The server refused a command for now because of its rate limits ([THROTTLED]); retry later."""


class ConnectionSlots:
    """At most `max_connections` open sessions per account in this process (Gmail allows 15 in all,
    shared with the user's phone and desktop clients)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], int] = {}

    def take(self, account: Account) -> None:
        """Count one more session for `account`, or raise TransientError when all slots are in use."""
        key = (account.host.lower(), account.username)
        with self._lock:
            if self._open.get(key, 0) >= account.max_connections:
                raise TransientError(
                    f"{account.host}: already {account.max_connections} connection(s) open for "
                    f"{account.username}",
                    "it will be retried when one closes (max_connections)",
                )
            self._open[key] = self._open.get(key, 0) + 1

    def give_back(self, account: Account) -> None:
        """Count one session for `account` as closed."""
        key = (account.host.lower(), account.username)
        with self._lock:
            self._open[key] = max(self._open.get(key, 0) - 1, 0)

    def in_use(self, account: Account) -> int:
        """How many sessions for `account` are open now."""
        with self._lock:
            return self._open.get((account.host.lower(), account.username), 0)


CONNECTION_SLOTS = ConnectionSlots()


@dataclass(frozen=True)
class FolderStatus:
    """What SELECT tells about a folder."""

    name: str
    uidvalidity: int
    uidnext: int
    exists: int


@dataclass(frozen=True)
class MessageInfo:
    """One message's metadata from a batched header fetch."""

    uid: int
    flags: tuple[bytes, ...]
    internaldate: dt.datetime
    size: int
    headers: bytes


@dataclass(frozen=True)
class GmailInfo:
    """What Gmail's extensions tell about one message: its X-GM-MSGID, X-GM-LABELS and flags."""

    gmail_id: int
    labels: frozenset[str]
    flags: frozenset[bytes]


def _label(value: object) -> str:
    # imapclient parses a label that looks like a number ("2024") as an int.
    return decode_utf7(value) if isinstance(value, bytes) else str(value)


def _parse_uid_set(text: bytes) -> list[int]:
    uids: list[int] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        uids.extend(range(int(low), int(high or low) + 1))
    return uids


def parse_appenduid(response: bytes | str) -> list[int]:
    """The UIDs a server's APPEND answer names in its APPENDUID code (RFC 4315); [] when absent."""
    data = response.encode() if isinstance(response, str) else response
    match = APPENDUID.search(data)
    return _parse_uid_set(match.group(2)) if match else []


def certificate_fingerprint(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint as colon-separated upper-case hex, as openssl prints it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


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


@contextmanager
def translated_errors(host: str, what: str) -> Iterator[None]:
    """Turn imapclient, imaplib and socket failures during `what` into imapcrypt errors."""
    try:
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
        raise CredentialsError(
            f"{host} refused the login", "check the user name and password (Gmail needs an app password)"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise TlsError(f"{host}: TLS certificate not trusted: {exc.verify_message}") from None
    except (imaplib.IMAP4.abort, imapclient.exceptions.IMAPClientAbortError) as exc:
        raise TransientError(f"{host}: connection lost during {what}: {exc}", "it will be retried") from None
    except (OSError, EOFError) as exc:
        if what == "connect":
            raise TransientError(f"cannot reach {host}: {exc}", "check host, port and the network") from None
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


class Session:
    """A logged-in IMAP connection to one account."""

    def __init__(self, client: imapclient.IMAPClient, account: Account) -> None:
        self.client = client
        self.account = account
        self.host = account.host
        self.capabilities = frozenset(c.upper() for c in client.capabilities())
        self.selected: str | None = None
        # Injectable so tests see the back-off without waiting minutes.
        self.sleep: Callable[[float], None] = time.sleep
        self.throttle_pauses: Sequence[float] = THROTTLE_PAUSES
        self.throttle_waits = 0  # how often a throttled command was retried (for reports and tests)
        self._slot_held = False

    # -- capabilities, asked as questions -------------------------------------------------------
    @property
    def can_expunge_uid(self) -> bool:
        """UIDPLUS: `UID EXPUNGE` removes exactly the named messages, and APPEND reports the new UID."""
        return b"UIDPLUS" in self.capabilities

    @property
    def can_move(self) -> bool:
        """MOVE (RFC 6851): a message changes folder atomically."""
        return b"MOVE" in self.capabilities

    @property
    def can_idle(self) -> bool:
        """IDLE (RFC 2177): the server pushes changes."""
        return b"IDLE" in self.capabilities

    @property
    def can_multiappend(self) -> bool:
        """MULTIAPPEND with LITERAL+: a batch of appends costs one round trip."""
        return b"MULTIAPPEND" in self.capabilities and b"LITERAL+" in self.capabilities

    @property
    def is_gmail(self) -> bool:
        """Gmail's extensions (labels as folders) are announced."""
        return b"X-GM-EXT-1" in self.capabilities

    @property
    def append_limit(self) -> int | None:
        """The largest message APPEND accepts (APPENDLIMIT=n, RFC 7889), None when unannounced."""
        for capability in self.capabilities:
            name, _, value = capability.partition(b"=")
            if name == b"APPENDLIMIT" and value.isdigit():
                return int(value)
        return None

    # -- commands -----------------------------------------------------------------------------------
    def _call(self, what: str, command: Callable[[], Any]) -> Any:
        """Run `command`; a throttled one is retried after the pauses in `throttle_pauses`.

        Retrying is safe: a NO means the server did nothing.
        """
        for pause in (*self.throttle_pauses, None):
            try:
                with translated_errors(self.host, what):
                    return command()
            except ThrottledError:
                if pause is None:
                    raise
                log.warning("%s: %s throttled; waiting %.0fs", self.host, what, pause)
                self.throttle_waits += 1
                self.sleep(pause)
        raise AssertionError("unreachable")

    def resolve_folder(self, folder: str) -> str:
        """The folder's real name: a configured name starting with a backslash is a SPECIAL-USE
        attribute (RFC 6154), e.g. "\\All" is Gmail's "[Gmail]/All Mail" whatever its localised name."""
        if not folder.startswith("\\"):
            return folder
        found = self.special_folder(folder.encode("ascii"))
        if found is None:
            raise ServerError(
                f"{self.host} has no folder with the special use {folder}", "check `folders` in the account"
            )
        return found

    def select(self, folder: str) -> FolderStatus:
        """Select `folder` read-write and report UIDVALIDITY, UIDNEXT and the message count."""
        real = self.resolve_folder(folder)  # the status keeps the caller's name: the journal's key
        response = self._call("SELECT", lambda: self.client.select_folder(real))
        self.selected = real
        uidnext = response.get(b"UIDNEXT")
        if uidnext is None:  # old servers omit it; ask STATUS
            uidnext = self._call("STATUS", lambda: self.client.folder_status(real, [b"UIDNEXT"]))[b"UIDNEXT"]
        return FolderStatus(
            name=folder,
            uidvalidity=int(response[b"UIDVALIDITY"]),
            uidnext=int(uidnext),
            exists=int(response.get(b"EXISTS", 0)),
        )

    def folder_exists(self, folder: str) -> bool:
        """Whether the folder exists on the server (a special-use name: whether a folder has that use)."""
        if folder.startswith("\\"):
            return self.special_folder(folder.encode("ascii")) is not None
        return bool(self._call("LIST", lambda: self.client.folder_exists(folder)))

    def list_folders(self) -> list[str]:
        """Every selectable folder's name."""
        listing = self._call("LIST", self.client.list_folders)
        return [name for flags, _, name in listing if b"\\Noselect" not in flags]

    def special_folder(self, flag: bytes) -> str | None:
        """The folder carrying the SPECIAL-USE attribute `flag` (e.g. b"\\\\Trash"), if any."""
        return self._call("LIST", lambda: self.client.find_special_folder(flag))  # type: ignore[no-any-return]

    # -- Gmail's extensions (developers.google.com/gmail/imap/imap-extensions) --------------------
    def gmail_labels(self, uids: Sequence[int]) -> dict[int, frozenset[str]]:
        """X-GM-LABELS of `uids` in the selected folder (system labels such as "\\Inbox" included)."""
        if not uids:
            return {}
        data = self._call("FETCH", lambda: self.client.fetch(uids, ["X-GM-LABELS"]))
        return {uid: frozenset(_label(v) for v in item.get(b"X-GM-LABELS", ())) for uid, item in data.items()}

    def add_gmail_labels(self, uids: Sequence[int], labels: Iterable[str]) -> None:
        """STORE +X-GM-LABELS: give `uids` the `labels` (creating user labels that do not exist)."""
        wanted = sorted(labels)
        if uids and wanted:
            self._call("STORE", lambda: self.client.add_gmail_labels(uids, wanted, silent=True))

    def gmail_info(self, uids: Sequence[int]) -> dict[int, GmailInfo]:
        """X-GM-MSGID, X-GM-LABELS and FLAGS of `uids`, in one round trip."""
        if not uids:
            return {}
        data = self._call("FETCH", lambda: self.client.fetch(uids, ["X-GM-MSGID", "X-GM-LABELS", "FLAGS"]))
        return {
            uid: GmailInfo(
                int(item[b"X-GM-MSGID"]),
                frozenset(_label(v) for v in item.get(b"X-GM-LABELS", ())),
                frozenset(item.get(b"FLAGS", ())),
            )
            for uid, item in data.items()
            if b"X-GM-MSGID" in item
        }

    def gmail_ids(self, uids: Sequence[int]) -> dict[int, int]:
        """X-GM-MSGID of `uids`: Gmail's id of the message itself, the same in every label folder."""
        if not uids:
            return {}
        data = self._call("FETCH", lambda: self.client.fetch(uids, ["X-GM-MSGID"]))
        return {uid: int(item[b"X-GM-MSGID"]) for uid, item in data.items() if b"X-GM-MSGID" in item}

    def uids_above(self, uid: int) -> list[int]:
        """UIDs greater than `uid` in the selected folder, ascending."""
        found = self._call("SEARCH", lambda: self.client.search(["UID", f"{uid + 1}:*"]))
        # "n:*" always matches the highest UID even when it is below n (RFC 3501 §6.4.8).
        return sorted(u for u in found if u > uid)

    def search(self, criteria: Sequence[str | int]) -> list[int]:
        """UIDs matching raw SEARCH `criteria` (e.g. ["OR", "X-GM-MSGID", 1, "X-GM-MSGID", 2])."""
        return sorted(self._call("SEARCH", lambda: self.client.search(list(criteria))))

    def search_header(self, name: str, value: str) -> list[int]:
        """UIDs of messages whose header `name` contains `value`."""
        return sorted(self._call("SEARCH", lambda: self.client.search(["HEADER", name, value])))

    def deleted_uids(self) -> list[int]:
        """UIDs the user (or anyone) marked \\Deleted in the selected folder."""
        return sorted(self._call("SEARCH", lambda: self.client.search(["DELETED"])))

    def fetch_info(self, uids: Sequence[int], header_fields: Sequence[str]) -> dict[int, MessageInfo]:
        """Flags, INTERNALDATE, size and the named header fields of `uids`, in one round trip."""
        if not uids:
            return {}
        section = f"BODY.PEEK[HEADER.FIELDS ({' '.join(header_fields).upper()})]"
        data = self._call(
            "FETCH", lambda: self.client.fetch(uids, ["FLAGS", "INTERNALDATE", "RFC822.SIZE", section])
        )
        result: dict[int, MessageInfo] = {}
        for uid, item in data.items():
            headers = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER.FIELDS")), b"")
            result[uid] = MessageInfo(
                uid=uid,
                flags=tuple(item[b"FLAGS"]),
                internaldate=item[b"INTERNALDATE"],
                size=int(item[b"RFC822.SIZE"]),
                headers=headers or b"",
            )
        return result

    def fetch_bodies(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The exact bytes of `uids` (BODY.PEEK[] never sets \\Seen); vanished UIDs are absent."""
        if not uids:
            return {}
        data = self._call("FETCH", lambda: self.client.fetch(uids, ["BODY.PEEK[]"]))
        return {uid: item[b"BODY[]"] for uid, item in data.items() if b"BODY[]" in item}

    def append(self, folder: str, message: bytes, flags: Iterable[bytes], when: dt.datetime) -> int | None:
        """Store `message` with `flags` and INTERNALDATE `when`; the new UID when the server says it."""
        kept = tuple(f for f in flags if f.lower() != b"\\recent")
        real = self.resolve_folder(folder)
        response = self._call("APPEND", lambda: self.client.append(real, message, kept, when))
        uids = parse_appenduid(response)
        return uids[0] if uids else None

    def append_many(
        self, folder: str, messages: Sequence[tuple[bytes, Iterable[bytes], dt.datetime]]
    ) -> list[int] | None:
        """MULTIAPPEND `messages` in one command; their new UIDs in order, when the server says them.

        All or none are stored (RFC 3502).
        """
        items = [
            {"msg": m, "flags": tuple(f for f in fl if f.lower() != b"\\recent"), "date": when}
            for m, fl, when in messages
        ]
        # imapclient hands back imaplib's raw (status, [text]) here, unlike append(), and does not
        # raise on NO: a refused MULTIAPPEND must not pass for a stored one.
        real = self.resolve_folder(folder)
        status, lines = self._call("APPEND", lambda: self.client.multiappend(real, items))
        text = b" ".join(line for line in lines if isinstance(line, bytes))
        if status != "OK":
            with translated_errors(self.host, "APPEND"):
                raise imaplib.IMAP4.error(text)
        uids = parse_appenduid(text)
        return uids if len(uids) == len(messages) else None

    def delete_uids(self, uids: Sequence[int]) -> None:
        """Mark `uids` \\Deleted and expunge exactly them (UIDPLUS)."""
        if not uids:
            return
        self._call("STORE", lambda: self.client.add_flags(uids, [imapclient.DELETED], silent=True))
        self._call("EXPUNGE", lambda: self.client.uid_expunge(uids))

    def add_flags(self, uids: Sequence[int], flags: Sequence[bytes]) -> None:
        """Add `flags` to `uids` (STORE +FLAGS.SILENT)."""
        if uids and flags:
            self._call("STORE", lambda: self.client.add_flags(uids, list(flags), silent=True))

    def mark_deleted(self, uids: Sequence[int]) -> None:
        """Set \\Deleted on `uids` without expunging."""
        if uids:
            self._call("STORE", lambda: self.client.add_flags(uids, [imapclient.DELETED], silent=True))

    def expunge_all(self) -> None:
        """A bare EXPUNGE: callers must first make sure only their own messages carry \\Deleted."""
        self._call("EXPUNGE", self.client.expunge)

    def copy(self, uids: Sequence[int], folder: str) -> None:
        """Copy `uids` to `folder`."""
        if uids:
            real = self.resolve_folder(folder)
            self._call("COPY", lambda: self.client.copy(uids, real))

    def uidnext(self, folder: str) -> int:
        """The UID the next message stored in `folder` will get (STATUS, without selecting it)."""
        status = self._call("STATUS", lambda: self.client.folder_status(folder, [b"UIDNEXT"]))
        return int(status[b"UIDNEXT"])

    def move(self, uids: Sequence[int], folder: str) -> None:
        """Move `uids` to `folder` atomically (MOVE)."""
        if uids:
            real = self.resolve_folder(folder)
            self._call("MOVE", lambda: self.client.move(uids, real))

    def noop(self) -> None:
        """A round trip that proves the connection is alive."""
        self._call("NOOP", self.client.noop)

    def logout(self) -> None:
        """End the session politely; a dead connection is just closed. Frees its connection slot."""
        try:
            self.client.logout()
        except Exception:  # the connection may already be gone; closing it is all that is left
            with suppress(OSError):
                self.client.shutdown()
        finally:
            if self._slot_held:
                self._slot_held = False
                CONNECTION_SLOTS.give_back(self.account)


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
        if token is not None:
            _oauth2_login(client, account, token)
        else:
            with translated_errors(account.host, "login"):
                client.login(account.username, password())
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


def probe_port(host: str, port: int, timeout: float = 10.0) -> bool:
    """Whether a TCP connection to host:port opens (used by doctor before anything else)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
