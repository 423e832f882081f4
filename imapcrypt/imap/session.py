"""An IMAP session over imapclient: capabilities as questions, and the few commands imapcrypt uses.

This is the only code that talks imapclient once a session is open (imap/connect.py opens it). The
engine asks questions ("can you expunge one UID?") and never sniffs capability strings itself. Every
imapclient or socket failure leaves this module as an `imapcrypt.errors` exception, translated in
imap/translate.py. Credentials never appear in a message or a log line.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import imapclient
import imapclient.exceptions
from imapclient.datetime_util import datetime_to_INTERNALDATE
from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.imapclient import join_message_ids, seq_to_parenstr, seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

from imapcrypt.config.model import Account
from imapcrypt.errors import (
    ServerError,
)
from imapcrypt.imap.slots import CONNECTION_SLOTS
from imapcrypt.imap.translate import LiteralTooLarge, ThrottledError, parsed_response, translated_errors

log = logging.getLogger(__name__)

# SPECIAL-USE attributes (RFC 6154) the engine looks folders up by.
TRASH = b"\\Trash"
ALL_MAIL = b"\\All"

SPECIAL_USES = frozenset(
    {b"\\all", b"\\archive", b"\\drafts", b"\\flagged", b"\\junk", b"\\sent", b"\\trash"}
)
APPENDUID = re.compile(rb"\[APPENDUID (\d+) ([\d:,]+)\]", re.IGNORECASE)
THROTTLE_PAUSES = (30.0, 120.0, 300.0)
# How long a message this session stored may take to show up in its own FETCH answers (Courier shows
# it only after a NOOP; RFC 3501 §6.3.11 allows that) before it counts as missing.
SETTLE_SECONDS = 5.0
SETTLE_PAUSES = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)  # between NOOPs; the last repeats until the deadline
# How a server refuses a keyword it will not store (GNU Mailutils: "BAD APPEND Unrecognized flag").
KEYWORD_REFUSALS = (b"UNRECOGNIZED FLAG", b"[CANNOT]", b"INVALID FLAG", b"BAD FLAG")


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
    modseq: int = 0  # CONDSTORE's MODSEQ where the server offers it (claims use it), else 0


@dataclass(frozen=True)
class PushTiming:
    """How a server told a watching session of new mail: seconds until IDLE pushed it (None: not in
    the time allowed), and whether it was known by the end (IDLE, or the NOOP after it)."""

    pushed: float | None
    shown_by_noop_or_push: bool


@dataclass(frozen=True)
class GmailInfo:
    """What Gmail's extensions tell about one message: its X-GM-MSGID, X-GM-LABELS and flags."""

    gmail_id: int
    labels: frozenset[str]
    flags: frozenset[bytes]


def _label(value: object) -> str:
    # imapclient parses a label that looks like a number ("2024") as an int.
    return decode_utf7(value) if isinstance(value, bytes) else str(value)


MAX_UID = 2**32 - 1  # RFC 3501: a UID is a non-zero 32-bit number
MAX_SIZE = 2**63 - 1
# The most bytes one literal in a response may announce, at the least (see `_bound_literals`).
MIN_LITERAL_LIMIT = 64 * 1024 * 1024


def number(value: object, name: str, low: int = 0, high: int = MAX_UID) -> int:
    """`value` from a response as an int in [low, high], or ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, bytes, str)):
        raise ValueError(f"{name} is not a number")
    try:
        result = int(value)
    except ValueError:
        raise ValueError(f"{name} is not a number") from None
    if not low <= result <= high:
        raise ValueError(f"{name} {result} is out of range")
    return result


def _parse_uid_set(text: bytes, limit: int) -> list[int]:
    ranges: list[tuple[int, int]] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        first, last = number(low, "APPENDUID", 1), number(high or low, "APPENDUID", 1)
        ranges.append((min(first, last), max(first, last)))  # "5:3" is 3, 4, 5 (RFC 3501 §9)
    if sum(last - first + 1 for first, last in ranges) > limit:
        raise ValueError(f"APPENDUID names more UIDs than the {limit} messages appended")
    return [uid for first, last in ranges for uid in range(first, last + 1)]


def parse_appenduid(response: bytes | str, limit: int) -> list[int]:
    """The UIDs a server's APPEND answer names in its APPENDUID code (RFC 4315); [] when absent.

    `limit` is how many messages were appended: a set naming more (`1:4000000000`), a UID of 0 or
    one beyond 32 bits raises ValueError before any list is built.
    """
    data = response.encode() if isinstance(response, str) else response
    match = APPENDUID.search(data)
    return _parse_uid_set(match.group(2), limit) if match else []


def literal_limit(account: Account) -> int:
    """The largest literal a response may carry: our largest body is a copy of a message of up to
    max_message_mb, and twice that leaves room."""
    return max(2 * account.max_message_bytes, MIN_LITERAL_LIMIT)


def bound_literals(client: imapclient.IMAPClient, limit: int) -> None:
    """Refuse any literal over `limit` bytes before imaplib allocates room for it (idempotent).

    imaplib reads an announced literal `{n}` with one `read(n)`, which allocates n bytes first: a
    server announcing `{99999999999}` would exhaust memory. The guard raises LiteralTooLarge,
    which `translated_errors` turns into a ServerError.

    It also keeps imaplib from formatting every literal it reads: imapclient sets imaplib's debug
    level to 5, at which `_append_untagged` builds the repr of each literal (two to three times its
    size, for a log line the `imapclient` logger then drops) before anyone asks whether it is wanted.
    """
    imap = getattr(client, "_imap", None)
    read = getattr(imap, "read", None)
    if imap is None or read is None or getattr(read, "bounded", False):
        return
    imap.debug = 0

    def bounded_read(size: int) -> bytes:
        if size > limit:
            raise LiteralTooLarge(size, limit)
        data: bytes = read(size)
        return data

    bounded_read.bounded = True  # type: ignore[attr-defined]
    setattr(imap, "read", bounded_read)  # noqa: B010 - an instance attribute that shadows the method


def _flags(value: object) -> tuple[bytes, ...]:
    if not isinstance(value, tuple) or not all(isinstance(f, bytes) for f in value):
        raise ValueError("FLAGS is not a list of flags")
    return value


def _date(value: object) -> dt.datetime:
    if not isinstance(value, dt.datetime):  # imapclient gives None for a date it cannot read
        raise ValueError("INTERNALDATE is not a date")
    return value


def _first(value: object) -> object:
    # imapclient gives MODSEQ as a one-element tuple: "MODSEQ (12)".
    return value[0] if isinstance(value, tuple) and len(value) == 1 else value


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError("a message body is not a string of bytes")
    return value


def refuses_keywords(server_said: str) -> bool:
    """Whether a refused APPEND's answer says the server will not store a keyword it was given."""
    return any(word in server_said.upper().encode("utf-8", "replace") for word in KEYWORD_REFUSALS)


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
        self.settle_seconds = SETTLE_SECONDS
        self.settle_noops = 0  # NOOPs sent so that late-showing messages appear (for reports and tests)
        # Set once `UID SEARCH UID n:*` was seen to answer nothing on a non-empty folder (Mailutils).
        self.uid_range_search_broken = False
        self.watched_exists = 0  # the message count of the folder `examine` watches, kept by NOOPs
        self._slot_held = False
        # PERMANENTFLAGS of the folder last selected read-write (None: the server did not say).
        self.permanent_flags: tuple[bytes, ...] | None = None
        # The FLAGS list of that folder: every flag and keyword defined there (claims of others show).
        self.defined_flags: tuple[bytes, ...] = ()
        bound_literals(client, literal_limit(account))

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
    def can_condstore(self) -> bool:
        """CONDSTORE (RFC 7162): MODSEQ per message and a conditional STORE (UNCHANGEDSINCE)."""
        return b"CONDSTORE" in self.capabilities

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
        permanent = response.get(b"PERMANENTFLAGS")
        self.permanent_flags = tuple(permanent) if isinstance(permanent, tuple) else None
        defined = response.get(b"FLAGS")
        self.defined_flags = (
            tuple(f for f in defined if isinstance(f, bytes)) if isinstance(defined, tuple) else ()
        )
        uidnext = response.get(b"UIDNEXT")
        if uidnext is None:  # old servers omit it; ask STATUS
            status = self._call("STATUS", lambda: self.client.folder_status(real, [b"UIDNEXT"]))
            with parsed_response(self.host, "STATUS"):
                uidnext = status[b"UIDNEXT"]
        with parsed_response(self.host, "SELECT"):
            return FolderStatus(
                name=folder,
                uidvalidity=number(response[b"UIDVALIDITY"], "UIDVALIDITY", 1),
                uidnext=number(uidnext, "UIDNEXT", 1, MAX_UID + 1),
                exists=number(response.get(b"EXISTS", 0), "EXISTS", 0, MAX_SIZE),
            )

    def examine(self, folder: str) -> None:
        """Select `folder` read-only: for watching it, where nothing may change it by accident."""
        real = self.resolve_folder(folder)
        response = self._call("EXAMINE", lambda: self.client.select_folder(real, readonly=True))
        self.selected = real
        with parsed_response(self.host, "EXAMINE"):
            self.watched_exists = number(response.get(b"EXISTS", 0), "EXISTS", 0, MAX_SIZE)

    def idle_until_change(
        self,
        stopping: Callable[[], bool],
        idling: Callable[[], None],
        refresh_seconds: float,
        check_seconds: float,
    ) -> bool:
        """IDLE on the selected folder until the server announces new mail (True), or until
        `refresh_seconds` pass or `stopping()` turns true (then a NOOP proves the connection alive
        and keeps it so; True if that NOOP reports more messages than the folder had). `idling()`
        is called once IDLE is in place; `stopping()` is looked at every `check_seconds`. A lost
        connection raises TransientError.
        """
        with translated_errors(self.host, "IDLE"):
            self.client.idle()
            idling()
            started = time.monotonic()
            arrived = False
            while not stopping() and time.monotonic() - started < refresh_seconds:
                asked = time.monotonic()
                responses = self.client.idle_check(timeout=check_seconds)
                self._exists_grew(responses)  # keeps the known count, so a NOOP does not repeat it
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    arrived = True
                    break
                if not responses and time.monotonic() - asked < check_seconds / 2:
                    # imapclient answers a closed connection with an early, empty result instead of
                    # an error: leave IDLE and ask the server, which raises if the connection is gone.
                    break
            # Servers whose IDLE pushes late (Cyrus without idled) report new mail when IDLE ends
            # (before its tagged OK) or on the NOOP after it.
            left = self._exists_grew(self.client.idle_done()[1])
            if not arrived:
                arrived = self._exists_grew(self.client.noop()[1]) or left
        return arrived

    def _exists_grew(self, responses: Sequence[Any]) -> bool:
        """Whether untagged responses announce more messages than the folder had when watched."""
        counts = [r[0] for r in responses if len(r) > 1 and r[1] == b"EXISTS" and isinstance(r[0], int)]
        grew = any(count > self.watched_exists for count in counts)
        if counts:
            self.watched_exists = counts[-1]
        return grew

    def folder_exists(self, folder: str) -> bool:
        """Whether the folder exists on the server (a special-use name: whether a folder has that use)."""
        if folder.startswith("\\"):
            return self.special_folder(folder.encode("ascii")) is not None
        return bool(self._call("LIST", lambda: self.client.folder_exists(folder)))

    def list_folders(self) -> list[str]:
        """Every selectable folder's name."""
        listing = self._call("LIST", self.client.list_folders)
        return [name for flags, _, name in listing if b"\\Noselect" not in flags]

    def delimiter(self) -> str:
        """The server's hierarchy delimiter (e.g. "/" or "."), "/" when it names none."""
        listing = self._call("LIST", lambda: self.client.list_folders(pattern=""))
        with parsed_response(self.host, "LIST"):
            found = next((delim for _, delim, _ in listing if delim), b"/")
            text = found.decode("ascii") if isinstance(found, bytes) else str(found)
            if len(text) != 1:
                raise ValueError("the hierarchy delimiter is not one character")
            return text

    def rename_folder(self, folder: str, new_name: str) -> None:
        """RENAME `folder` to `new_name`."""
        self._call("RENAME", lambda: self.client.rename_folder(folder, new_name))

    def special_uses(self) -> dict[str, tuple[bytes, ...]]:
        """Each folder's SPECIAL-USE attributes (RFC 6154, e.g. b"\\Sent"), for the folders that have one."""
        listing = self._call("LIST", self.client.list_folders)
        with parsed_response(self.host, "LIST"):
            return {
                name: uses
                for flags, _, name in listing
                if (uses := tuple(f for f in _flags(flags) if f.lower() in SPECIAL_USES))
            }

    def special_folder(self, flag: bytes) -> str | None:
        """The folder carrying the SPECIAL-USE attribute `flag` (e.g. b"\\\\Trash"), if any."""
        return self._call("LIST", lambda: self.client.find_special_folder(flag))  # type: ignore[no-any-return]

    # -- Gmail's extensions (developers.google.com/gmail/imap/imap-extensions) --------------------
    def gmail_labels(self, uids: Sequence[int]) -> dict[int, frozenset[str]]:
        """X-GM-LABELS of `uids` in the selected folder (system labels such as "\\Inbox" included)."""
        if not uids:
            return {}
        data = self._fetch(uids, ["X-GM-LABELS"])
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
        data = self._fetch(uids, ["X-GM-MSGID", "X-GM-LABELS", "FLAGS"])
        with parsed_response(self.host, "FETCH"):
            return {
                uid: GmailInfo(
                    number(item[b"X-GM-MSGID"], "X-GM-MSGID", 0, 2**64 - 1),
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
        data = self._fetch(uids, ["X-GM-MSGID"])
        with parsed_response(self.host, "FETCH"):
            return {
                uid: number(item[b"X-GM-MSGID"], "X-GM-MSGID", 0, 2**64 - 1)
                for uid, item in data.items()
                if b"X-GM-MSGID" in item
            }

    def uids_above(self, uid: int) -> list[int]:
        """UIDs greater than `uid` in the selected folder, ascending.

        `UID SEARCH UID n:*` matches at least the highest UID of any non-empty folder (RFC 3501
        §6.4.8), so an empty answer is confirmed with `UID SEARCH ALL`: GNU Mailutils answers every
        `n:*` with nothing, and a server that does is asked with ALL from then on.
        """
        if not self.uid_range_search_broken:
            found = self._call("SEARCH", lambda: self.client.search(["UID", f"{uid + 1}:*"]))
            if found:
                # "n:*" always matches the highest UID even when it is below n (RFC 3501 §6.4.8).
                return sorted(u for u in found if u > uid)
        every = self._call("SEARCH", lambda: self.client.search(["ALL"]))
        if every and not self.uid_range_search_broken:
            self.uid_range_search_broken = True
            log.warning("%s: UID SEARCH of a UID range answers nothing; searching ALL instead", self.host)
        return sorted(u for u in every if u > uid)

    def search(self, criteria: Sequence[str | int]) -> list[int]:
        """UIDs matching raw SEARCH `criteria` (e.g. ["OR", "X-GM-MSGID", 1, "X-GM-MSGID", 2])."""
        return sorted(self._call("SEARCH", lambda: self.client.search(list(criteria))))

    def search_header(self, name: str, value: str) -> list[int]:
        """UIDs of messages whose header `name` contains `value`."""
        return sorted(self._call("SEARCH", lambda: self.client.search(["HEADER", name, value])))

    def deleted_uids(self) -> list[int]:
        """UIDs the user (or anyone) marked \\Deleted in the selected folder."""
        return sorted(self._call("SEARCH", lambda: self.client.search(["DELETED"])))

    def _fetch(self, uids: Sequence[int], items: Sequence[str]) -> dict[int, dict[bytes, Any]]:
        """`UID FETCH uids (items)`: each requested message's items, keyed by the UID it carries.

        Not imapclient's fetch: that keys a response without a UID by its sequence number, so an
        unsolicited FETCH (another session changed a message's flags, RFC 3501 §7.4.2) lands under a
        requested UID equal to that number, as if that message (perhaps expunged meanwhile) had those
        flags. Here responses are merged by sequence number (the same message) and kept only when
        they carry a requested UID, which every answer to a UID FETCH does (§6.4.8).
        """
        return self._call("FETCH", lambda: self._raw_fetch(uids, items))  # type: ignore[no-any-return]

    def _raw_fetch(self, uids: Sequence[int], items: Sequence[str]) -> dict[int, dict[bytes, Any]]:
        imap = self.client._imap
        tag = imap._command("UID", "FETCH", join_message_ids(uids), seq_to_parenstr_upper(list(items)))
        typ, data = imap._command_complete("FETCH", tag)
        self.client._checkok("fetch", typ, data)
        typ, data = imap._untagged_response(typ, data, "FETCH")
        by_seq = parse_fetch_response(data, self.client.normalise_times, uid_is_key=False)
        wanted = set(uids)
        result: dict[int, dict[bytes, Any]] = {}
        for item in by_seq.values():
            uid = item.get(b"UID")
            if isinstance(uid, int) and uid in wanted:
                result.setdefault(uid, {}).update(item)
        return result

    def fetch_info(self, uids: Sequence[int], header_fields: Sequence[str]) -> dict[int, MessageInfo]:
        """Flags, INTERNALDATE, size and the named header fields of `uids`, in one round trip."""
        if not uids:
            return {}
        section = f"BODY.PEEK[HEADER.FIELDS ({' '.join(header_fields).upper()})]"
        modseq = ["MODSEQ"] if self.can_condstore else []  # a claim is then one conditional STORE
        data = self._fetch(uids, ["FLAGS", "INTERNALDATE", "RFC822.SIZE", *modseq, section])
        result: dict[int, MessageInfo] = {}
        with parsed_response(self.host, "FETCH"):
            for uid, item in data.items():
                headers = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER.FIELDS")), b"")
                result[number(uid, "UID", 1)] = MessageInfo(
                    uid=uid,
                    flags=_flags(item[b"FLAGS"]),
                    internaldate=_date(item[b"INTERNALDATE"]),
                    size=number(item[b"RFC822.SIZE"], "RFC822.SIZE", 0, MAX_SIZE),
                    headers=_bytes(headers or b""),
                    modseq=number(_first(item[b"MODSEQ"]), "MODSEQ", 0, MAX_SIZE) if b"MODSEQ" in item else 0,
                )
        return result

    def fetch_info_settled(self, uids: Sequence[int], header_fields: Sequence[str]) -> dict[int, MessageInfo]:
        """`fetch_info`, giving the server until `settle_seconds` to show UIDs missing from its answer.

        Some servers (Courier) show a session the message it just APPENDed only after a NOOP (RFC 3501
        §6.3.11): a missing UID is asked for again after each NOOP, with growing pauses, and counts as
        missing only when the deadline passes. Nothing waits when every UID is there at once.
        """
        found = self.fetch_info(uids, header_fields)
        deadline = time.monotonic() + self.settle_seconds
        pauses = iter(SETTLE_PAUSES)
        missing = [u for u in uids if u not in found]
        while missing and time.monotonic() < deadline:
            # Not `self.sleep`: that is the throttle wait, which a stopping daemon turns into an error.
            time.sleep(min(next(pauses, SETTLE_PAUSES[-1]), max(deadline - time.monotonic(), 0.0)))
            self.settle()
            found |= self.fetch_info(missing, header_fields)
            missing = [u for u in missing if u not in found]
        return found

    def settle(self) -> None:
        """A NOOP, so that the server reports messages stored since it last told this session
        (RFC 3501 §6.1.2: NOOP is how a client asks for pending EXISTS and EXPUNGE responses)."""
        self.settle_noops += 1
        self.noop()

    def fetch_all_flags(self) -> dict[int, tuple[tuple[bytes, ...], dt.datetime, int]]:
        """Flags, INTERNALDATE and size of every message in the selected folder, by UID."""
        # imapclient takes no "1:*" range: the UIDs first, then one FETCH of them all.
        uids = self.search(["ALL"])
        if not uids:
            return {}
        data = self._fetch(uids, ["FLAGS", "INTERNALDATE", "RFC822.SIZE"])
        with parsed_response(self.host, "FETCH"):
            return {
                number(uid, "UID", 1): (
                    _flags(item[b"FLAGS"]),
                    _date(item[b"INTERNALDATE"]),
                    number(item[b"RFC822.SIZE"], "RFC822.SIZE", 0, MAX_SIZE),
                )
                for uid, item in data.items()
            }

    def fetch_bodies(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The exact bytes of `uids` (BODY.PEEK[] never sets \\Seen); vanished UIDs are absent."""
        if not uids:
            return {}
        data = self._fetch(uids, ["BODY.PEEK[]"])
        with parsed_response(self.host, "FETCH"):
            return {uid: _bytes(item[b"BODY[]"]) for uid, item in data.items() if b"BODY[]" in item}

    def append(self, folder: str, message: bytes, flags: Iterable[bytes], when: dt.datetime) -> int | None:
        """Store `message` with `flags` and INTERNALDATE `when`; the new UID when the server says it."""
        kept = tuple(f for f in flags if f.lower() != b"\\recent")
        real = self.resolve_folder(folder)
        try:
            response = self._call("APPEND", lambda: self._send_append(real, [(message, kept, when)]))
        except ServerError as exc:
            system = tuple(f for f in kept if f.startswith(b"\\"))
            if system == kept or not refuses_keywords(exc.message):
                raise
            # GNU Mailutils refuses any keyword in APPEND: store the message with its system flags
            # rather than not at all, and say which keywords it lost (names only, never the message).
            dropped = b" ".join(f for f in kept if f not in system).decode("ascii", "replace")
            log.warning("%s: APPEND refused keywords; stored without %s", self.host, dropped)
            response = self._call("APPEND", lambda: self._send_append(real, [(message, system, when)]))
        uids = self._appended_uids(response, 1)
        return uids[0] if uids else None

    def append_many(
        self, folder: str, messages: Sequence[tuple[bytes, Iterable[bytes], dt.datetime]]
    ) -> list[int] | None:
        """MULTIAPPEND `messages` in one command; their new UIDs in order, when the server says them.

        All or none are stored (RFC 3502). Only for a server that `can_multiappend`.
        """
        items = [(m, tuple(f for f in fl if f.lower() != b"\\recent"), when) for m, fl, when in messages]
        real = self.resolve_folder(folder)
        text = self._call("APPEND", lambda: self._send_append(real, items))
        uids = self._appended_uids(text, len(messages))
        return uids if len(uids) == len(messages) else None

    def _send_append(self, real: str, items: Sequence[tuple[bytes, tuple[bytes, ...], dt.datetime]]) -> bytes:
        """One APPEND of `items` (message, flags, INTERNALDATE) to folder `real`, several only with
        LITERAL+ (MULTIAPPEND); the text of the server's OK. A NO raises (translated by `_call`).

        Each message goes to the socket as it is, never copied: imapclient copies every message of
        a MULTIAPPEND twice and imaplib runs a CRLF regex over an APPEND's (docs/engine.md,
        "Memory"). A copy is CRLF throughout already; imapclient's MULTIAPPEND never converted.
        """
        imap = self.client._imap
        mailbox = self.client._normalise_folder(real)

        def head(flags: tuple[bytes, ...], when: dt.datetime) -> bytes:
            return f'{seq_to_parenstr(flags)} "{datetime_to_INTERNALDATE(when)}"'.encode("ascii")

        if b"LITERAL+" in self.capabilities:
            tag = imap._new_tag()
            imap.send(tag + b" APPEND " + mailbox)
            for message, flags, when in items:
                imap.send(b" " + head(flags, when) + b" {%d+}\r\n" % len(message))
                imap.send(message)
            imap.send(b"\r\n")
            status, lines = imap._command_complete("APPEND", tag)
        else:
            # A synchronizing literal, which imaplib sends as it is once the server says go on.
            ((message, flags, when),) = items
            imap.literal = message
            status, lines = imap._simple_command("APPEND", mailbox, head(flags, when))
        # imaplib does not raise on NO: a refused APPEND must not pass for a stored one.
        text = b" ".join(line for line in lines if isinstance(line, bytes))
        if status != "OK":
            raise imaplib.IMAP4.error(text)
        return text

    def _appended_uids(self, response: bytes | str, count: int) -> list[int]:
        """The UIDs an APPEND answer names, [] when it names none or nonsense.

        The message is stored by then: a malformed APPENDUID must not read as a failed APPEND (the
        caller would drop its intent and store it again), so it counts as "the server did not say"
        and the copy is found by its id.
        """
        try:
            return parse_appenduid(response, count)
        except ValueError as exc:
            log.warning("%s: ignoring a malformed APPENDUID (%s)", self.host, exc)
            return []

    def delete_uids(self, uids: Sequence[int]) -> None:
        """Mark `uids` \\Deleted and expunge exactly them (UIDPLUS).

        Never pipelined: the EXPUNGE depends on the STORE's effect, an ambiguity RFC 3501 §5.5 forbids
        a client to send without waiting. Dovecot runs such UID commands side by side, so under load
        the EXPUNGE could find nothing marked yet and leave the originals beside their copies.
        """
        if not uids:
            return
        self._call("STORE", lambda: self.client.add_flags(uids, [imapclient.DELETED], silent=True))
        self._call("EXPUNGE", lambda: self.client.uid_expunge(uids))

    def add_flags(self, uids: Sequence[int], flags: Sequence[bytes]) -> None:
        """Add `flags` to `uids` (STORE +FLAGS.SILENT)."""
        if uids and flags:
            self._call("STORE", lambda: self.client.add_flags(uids, list(flags), silent=True))

    def store_flags(
        self, uids: Sequence[int], flags: Sequence[bytes], mode: str
    ) -> dict[int, tuple[bytes, ...]]:
        """STORE `flags` on `uids`: `mode` "add", "remove" or "replace"; each message's flags afterwards."""
        if not uids:
            return {}
        command = {"add": self.client.add_flags, "remove": self.client.remove_flags}.get(
            mode, self.client.set_flags
        )
        answer = self._call("STORE", lambda: command(uids, list(flags)))
        with parsed_response(self.host, "STORE"):
            return {number(uid, "UID", 1): _flags(found) for uid, found in answer.items()}

    def expunge_uids(self, uids: Sequence[int]) -> None:
        """Expunge exactly `uids` (already \\Deleted) with UID EXPUNGE; without UIDPLUS a bare EXPUNGE,
        which removes every \\Deleted message: what a client's own EXPUNGE asks for anyway."""
        if not uids:
            return
        if self.can_expunge_uid:
            self._call("EXPUNGE", lambda: self.client.uid_expunge(uids))
        else:
            self._call("EXPUNGE", self.client.expunge)

    def remove_flags(self, uids: Sequence[int], flags: Sequence[bytes]) -> None:
        """Take `flags` off `uids` (STORE -FLAGS.SILENT)."""
        if uids and flags:
            self._call("STORE", lambda: self.client.remove_flags(uids, list(flags), silent=True))

    def search_keyword(self, keyword: bytes) -> list[int]:
        """UIDs carrying the keyword `keyword` in the selected folder."""
        return sorted(self._call("SEARCH", lambda: self.client.search(["KEYWORD", keyword.decode()])))

    def fetch_flags(self, uids: Sequence[int]) -> dict[int, tuple[bytes, ...]]:
        """FLAGS of `uids`; vanished UIDs are absent."""
        if not uids:
            return {}
        data = self._fetch(uids, ["FLAGS"])
        with parsed_response(self.host, "FETCH"):
            return {number(uid, "UID", 1): _flags(item[b"FLAGS"]) for uid, item in data.items()}

    def fetch_flags_modseq(self, uids: Sequence[int]) -> dict[int, tuple[tuple[bytes, ...], int]]:
        """FLAGS and MODSEQ (CONDSTORE) of `uids`; vanished UIDs are absent."""
        if not uids:
            return {}
        data = self._fetch(uids, ["FLAGS", "MODSEQ"])
        with parsed_response(self.host, "FETCH"):
            return {
                number(uid, "UID", 1): (
                    _flags(item[b"FLAGS"]),
                    number(_first(item[b"MODSEQ"]), "MODSEQ", 0, MAX_SIZE),
                )
                for uid, item in data.items()
            }

    def add_flags_unchanged_since(
        self, uids: Sequence[int], flags: Sequence[bytes], modseq: int
    ) -> list[int]:
        """`UID STORE <uids> (UNCHANGEDSINCE modseq) +FLAGS.SILENT (flags)` (RFC 7162 §3.1.3): the
        UIDs the server answered MODIFIED for (changed since `modseq`: left as they were)."""
        if not uids or not flags:
            return []
        imap = self.client._imap  # imapclient has no conditional STORE: imaplib's own uid()
        uid_set = ",".join(str(u) for u in sorted(uids))
        words = "(" + " ".join(f.decode() for f in flags) + ")"

        def store() -> list[int]:
            imap.untagged_responses.pop("MODIFIED", None)
            status, lines = imap.uid("STORE", uid_set, f"(UNCHANGEDSINCE {modseq}) +FLAGS.SILENT", words)
            if status != "OK":
                raise imaplib.IMAP4.error(b" ".join(x for x in lines if isinstance(x, bytes)))
            sent = set(uids)
            found: set[int] = set()
            for text in imap.untagged_responses.pop("MODIFIED", []):
                raw = (text if isinstance(text, bytes) else str(text).encode()).strip()
                with parsed_response(self.host, "STORE"):
                    # A set can only name UIDs we sent: bounded by their span, whatever the server says.
                    found |= set(_parse_uid_set(raw, max(sent) - min(sent) + 1)) & sent if raw else set()
            return sorted(found)

        return self._call("STORE", store)  # type: ignore[no-any-return]

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
        with parsed_response(self.host, "STATUS"):
            return number(status[b"UIDNEXT"], "UIDNEXT", 1, MAX_UID + 1)

    def move(self, uids: Sequence[int], folder: str) -> None:
        """Move `uids` to `folder` atomically (MOVE)."""
        if uids:
            real = self.resolve_folder(folder)
            self._call("MOVE", lambda: self.client.move(uids, real))

    # -- what `doctor` asks about the server ----------------------------------------------------------
    def server_id(self) -> dict[str, str]:
        """What the server says it is (ID, RFC 2971: name, vendor, version...); {} without ID."""
        if b"ID" not in self.capabilities:
            return {}
        answer = self._call("ID", lambda: self.client.id_({"name": "imapcrypt"})) or ()
        items = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in answer]
        return {k.lower(): v for k, v in zip(items[::2], items[1::2], strict=False)}

    @property
    def greeting(self) -> str:
        """The server's greeting line (some servers name themselves only there)."""
        welcome = self.client.welcome
        return welcome.decode("utf-8", "replace") if isinstance(welcome, bytes) else str(welcome or "")

    def personal_folder(self, name: str) -> str:
        """`name` as a folder of the personal namespace ("INBOX.name" on Courier), from NAMESPACE."""
        if b"NAMESPACE" not in self.capabilities:
            return name
        personal = self._call("NAMESPACE", self.client.namespace).personal
        prefix = personal[0][0] if personal else ""
        prefix = prefix.decode() if isinstance(prefix, bytes) else str(prefix)
        return name if name.startswith(prefix) else prefix + name

    def create_folder(self, folder: str) -> None:
        """CREATE `folder` (doctor's scratch folder, or one a client of `serve` creates)."""
        self._call("CREATE", lambda: self.client.create_folder(folder))

    def delete_folder(self, folder: str) -> None:
        """DELETE `folder` with everything in it (doctor's own scratch folder, or one a client of `serve`
        deletes: the client asked for exactly that)."""
        if self.selected == folder:
            self._call("CLOSE", self.client.close_folder)
            self.selected = None
        self._call("DELETE", lambda: self.client.delete_folder(folder))

    def wait_for_push(self, seconds: float, idling: Callable[[], None]) -> PushTiming:
        """IDLE on the folder `examine` selected, call `idling()` once IDLE is in place, and time how
        long after `idling()` returned the server pushed new mail (None: not within `seconds`); then
        whether leaving IDLE or a NOOP reports it (what the daemon's `idle_noop_seconds` relies on)."""
        with translated_errors(self.host, "IDLE"):
            self.client.idle()
            idling()
            started = time.monotonic()
            pushed: float | None = None
            while pushed is None and time.monotonic() - started < seconds:
                left = max(seconds - (time.monotonic() - started), 0.01)
                responses = self.client.idle_check(timeout=min(left, 1.0))
                if self._exists_grew(responses):
                    pushed = time.monotonic() - started
            shown = self._exists_grew(self.client.idle_done()[1])
            shown = self._exists_grew(self.client.noop()[1]) or shown
        return PushTiming(pushed, pushed is not None or shown)

    def noop(self) -> None:
        """A round trip that proves the connection is alive."""
        self._call("NOOP", self.client.noop)

    def noop_reports_change(self) -> bool:
        """NOOP on the selected folder: whether the server reported a change since the last command
        (a new, expunged or re-flagged message). Cheaper than fetching the folder's state to compare."""
        _, responses = self._call("NOOP", self.client.noop)
        with parsed_response(self.host, "NOOP"):
            return any(
                isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"EXPUNGE", b"FETCH", b"RECENT")
                for r in responses
            )

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
