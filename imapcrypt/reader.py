"""Reading encrypted mail without restoring it on the server (the tray's reader, docs/tray.md).

A folder's list comes from headers alone: From, Date and size in clear, the subject decrypted from
`X-Imapcrypt-Subject` (docs/format.md) when a passphrase is given. Opening one message fetches its bytes
(BODY.PEEK[]: nothing is marked \\Seen) and decrypts the original in memory. `parse_message` splits an
original into what a viewer shows: plain text, HTML as the sender wrote it (sanitising is the
viewer's job) and attachments. Nothing here logs a subject, an address or a body.
"""

from __future__ import annotations

import datetime as dt
import email.message
import email.parser
import email.policy
import email.utils
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from imapcrypt.errors import EnvelopeError
from imapcrypt.imap.session import MessageInfo, Session
from imapcrypt.message import envelope
from imapcrypt.message.headers import MAX_DECODE_CHARS, decode_words
from imapcrypt.openpgp.gnupg import DEFAULT_MAX_OUTPUT, GnuPG

LIST_HEADERS = (*envelope.CLASSIFY_HEADERS, "From", "Date", "Subject", envelope.SUBJECT_HEADER)
DEFAULT_LIMIT = 200
_parser = email.parser.BytesParser(policy=email.policy.default)
_header_parser = email.parser.BytesHeaderParser(policy=email.policy.default)
_compat_parser = email.parser.BytesParser(policy=email.policy.compat32)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    """One line of a folder's message list.

    `subject` is None while it is encrypted and locked (no passphrase given, or it did not decrypt);
    a plaintext message shows its own subject.
    """

    uid: int
    sender: str
    date: dt.datetime | None
    size: int
    kind: envelope.Kind
    subject: str | None

    @property
    def encrypted_by_us(self) -> bool:
        """The message is an imapcrypt copy."""
        return self.kind is envelope.Kind.OURS


@dataclass(frozen=True)
class Attachment:
    """A part the viewer offers to save rather than show."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ParsedMessage:
    """What a viewer shows of an original message."""

    sender: str
    to: str
    date: str
    subject: str
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]


def _raw_header(headers: email.message.Message, name: str) -> str | None:
    """The first `name` field's value as written, cut to MAX_DECODE_CHARS, never parsed.

    `get()` under the default policy parses the whole value as its structured type first: 5 KB of
    "(" in a From field recurses past Python's limit, and a long Subject costs quadratic memory.
    """
    key = name.lower()
    value = next((v for k, v in headers.raw_items() if k.lower() == key), None)
    return None if value is None else str(value)[:MAX_DECODE_CHARS]


def _header_text(headers: email.message.Message, name: str) -> str:
    value = _raw_header(headers, name)
    return "" if value is None else decode_words(value).replace("\r", " ").replace("\n", " ")


def _date(headers: email.message.Message, fallback: dt.datetime) -> dt.datetime | None:
    raw = _raw_header(headers, "Date")
    if raw is None:
        return fallback
    try:
        return email.utils.parsedate_to_datetime(raw[:200])
    except (TypeError, ValueError, IndexError):
        return fallback


def summarise(
    infos: Sequence[MessageInfo], gpg: GnuPG | None = None, passphrase: str | None = None
) -> list[Summary]:
    """The list lines of `infos` (fetched with LIST_HEADERS), newest UID first.

    With `gpg`, each imapcrypt copy's subject is decrypted with `passphrase` ("" or None: no
    passphrase, or gpg-agent's cache); one that does not decrypt keeps subject None.
    """

    def subject_of(info: MessageInfo) -> str | None:
        if gpg is None:
            return None
        try:
            return envelope.subject(info.headers, gpg, passphrase)
        except EnvelopeError:
            return None
        except Exception:  # a forged copy must not take the whole list down; it stays locked
            log.warning("uid %d: its encrypted subject could not be read", info.uid)
            return None

    ordered = sorted(infos, key=lambda i: i.uid, reverse=True)
    kinds = [envelope.classify(info.headers) for info in ordered]
    ours = [info for info, kind in zip(ordered, kinds, strict=True) if kind is envelope.Kind.OURS]
    subjects: dict[int, str | None] = {}
    if gpg is not None and ours:
        # One gpg process per subject: a few in parallel keep a 200-line list under a second.
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="imapcrypt-subject") as pool:
            subjects = dict(zip((i.uid for i in ours), pool.map(subject_of, ours), strict=True))
    result: list[Summary] = []
    for info, kind in zip(ordered, kinds, strict=True):
        headers = _header_parser.parsebytes(info.headers)
        subject = subjects.get(info.uid) if kind is envelope.Kind.OURS else _header_text(headers, "Subject")
        result.append(
            Summary(
                uid=info.uid,
                sender=_header_text(headers, "From"),
                date=_date(headers, info.internaldate),
                size=info.size,
                kind=kind,
                subject=subject,
            )
        )
    return result


def list_messages(
    session: Session,
    folder: str,
    gpg: GnuPG | None = None,
    passphrase: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[Summary]:
    """The newest `limit` messages of `folder`, from their headers (see `summarise`)."""
    session.select(folder)
    uids = session.uids_above(0)[-limit:]
    return summarise(list(session.fetch_info(uids, LIST_HEADERS).values()), gpg, passphrase)


def summaries_of(
    session: Session,
    folder: str,
    uids: Sequence[int],
    gpg: GnuPG | None = None,
    passphrase: str | None = None,
) -> dict[int, Summary]:
    """The list lines of the named `uids` of `folder` (those still there), by UID."""
    session.select(folder)
    infos = session.fetch_info(list(uids), LIST_HEADERS)
    return {s.uid: s for s in summarise(list(infos.values()), gpg, passphrase)}


def fetch_original(
    session: Session,
    folder: str,
    uid: int,
    gpg: GnuPG,
    passphrase: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_OUTPUT,
) -> bytes:
    """The original bytes of message `uid`: decrypted in memory if it is an imapcrypt copy.

    Raises EnvelopeError (DecryptError for a wrong passphrase, OutputLimitError for a copy that would
    decrypt to more than `max_bytes`) or ServerError if it is gone.
    """
    session.select(folder)
    raw = session.fetch_bodies([uid]).get(uid)
    if raw is None:
        raise EnvelopeError(f"message {uid} is no longer in {folder}", "refresh the list")
    if envelope.classify(raw) is envelope.Kind.OURS:
        return envelope.restore(raw, gpg, passphrase, max_bytes=max_bytes)
    return raw


# Controls, bidirectional overrides (which make "txt.exe" read "exe.txt") and characters that some
# file systems refuse.
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069:*?\"<>|]")
MAX_FILENAME = 120


def safe_filename(name: str | None) -> str:
    """A sender's attachment name reduced to a plain base name to offer when saving it.

    Directory parts (`../../.bashrc`, `C:\\x`), control characters and characters that some file
    systems refuse are dropped, a leading dot goes (no hidden files), and the name is cut to
    MAX_FILENAME characters; nothing usable left gives "attachment".
    """
    base = re.split(r"[/\\]", name or "")[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip().lstrip(".").strip()
    stem, dot, suffix = cleaned.rpartition(".")
    if dot and len(suffix) <= 16 and len(cleaned) > MAX_FILENAME:
        cleaned = stem[: MAX_FILENAME - len(suffix) - 1] + "." + suffix
    cleaned = cleaned[:MAX_FILENAME]
    return cleaned if cleaned.strip("._ ") else "attachment"


def _decoded_text(part: email.message.EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken transfer encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    return content if isinstance(content, str) else bytes(content).decode("utf-8", "replace")


def parse_message(raw: bytes) -> ParsedMessage:
    """Split an original message into its headers, its text and HTML bodies and its attachments.

    Never raises: MIME that the `email` package cannot take apart (it recurses on nested comments
    and parts) is shown as its source text.
    """
    try:
        return _parse_mime(raw)
    except Exception:  # RecursionError and assorted errors on hostile MIME
        log.warning("a message could not be taken apart; showing its source")
        message = _compat_parser.parsebytes(raw[: MAX_DECODE_CHARS * 4], headersonly=True)
        return ParsedMessage(
            sender=_header_text(message, "From"),
            to=_header_text(message, "To"),
            date=_header_text(message, "Date"),
            subject=_header_text(message, "Subject"),
            text=raw.decode("utf-8", "replace"),
            html=None,
            attachments=(),
        )


def _parse_mime(raw: bytes) -> ParsedMessage:
    message = _parser.parsebytes(raw)
    assert isinstance(message, email.message.EmailMessage)  # noqa: S101 - the default policy makes one
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        assert isinstance(part, email.message.EmailMessage)  # noqa: S101
        content_type = part.get_content_type()
        filename = part.get_filename()
        if part.get_content_disposition() == "attachment" or (filename and content_type != "text/plain"):
            data = part.get_payload(decode=True)
            attachments.append(
                Attachment(safe_filename(filename), content_type, data if isinstance(data, bytes) else b"")
            )
        elif content_type == "text/plain" and text is None:
            text = _decoded_text(part)
        elif content_type == "text/html" and html is None:
            html = _decoded_text(part)
    return ParsedMessage(
        sender=_header_text(message, "From"),
        to=_header_text(message, "To"),
        date=_header_text(message, "Date"),
        subject=_header_text(message, "Subject"),
        text=text,
        html=html,
        attachments=tuple(attachments),
    )
