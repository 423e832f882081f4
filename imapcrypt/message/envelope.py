"""The encrypted message, format v1 (specified in docs/format.md).

`seal` turns an original message M into a PGP/MIME message E with protected headers; `restore` gives M
back byte for byte; `subject` reads the real subject from E's `X-Imapcrypt-Subject` header alone. E is
built as bytes: M is never parsed into objects and re-serialised, because that changes MIME.
"""

from __future__ import annotations

import base64
import binascii
import email.header
import functools
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from imapcrypt.errors import ConfigError, EnvelopeError
from imapcrypt.message.classify import CLASSIFY_HEADERS, Kind, classify
from imapcrypt.message.copy import MARKER_HEADER, armor_block, marker_id, marker_value
from imapcrypt.message.headers import ContentType, Field, HeaderSection, decode_words
from imapcrypt.openpgp.gnupg import DEFAULT_MAX_OUTPUT, GnuPG
from imapcrypt.openpgp.inprocess import Encryptor, encryptor

__all__ = [
    "CLASSIFY_HEADERS",
    "DEFAULT_OUTER_HEADERS",
    "MARKER_HEADER",
    "MAX_SUBJECT_CHARS",
    "SUBJECT_HEADER",
    "Kind",
    "Sealed",
    "classify",
    "marker_id",
    "marker_value",
    "message_id",
    "restore",
    "seal",
    "subject",
]

SUBJECT_HEADER = "X-Imapcrypt-Subject"
DEFAULT_OUTER_HEADERS: tuple[str, ...] = (
    "From",
    "To",
    "Cc",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
)
HIDDEN_SUBJECT = "[...]"  # RFC 9788's obscured subject
ID_BYTES = 20  # 160 bits of HMAC-SHA256: 32 base32 characters
MIN_SECRET_BYTES = 16
# A list only shows a line of it; a spam subject of 100 KB must not make E's header that big.
MAX_SUBJECT_CHARS = 2000
MAX_SUBJECT_BYTES = 4 * MAX_SUBJECT_CHARS  # UTF-8 takes at most 4 bytes a character

# Inside the encrypted entity, next to the outer copies, for clients that read protected headers.
_INNER_KEYS = frozenset({"subject", "reply-to"})
# Never copied outside: the subject is what we hide, the rest describes E itself.
_NOT_COPYABLE = ("subject", "mime-version", "hp-outer", MARKER_HEADER.lower(), SUBJECT_HEADER.lower())
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")
_CRLF = b"\r\n"
_PREAMBLE = b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
_FOLD = 76


@dataclass(frozen=True)
class Sealed:
    """An encrypted message E (CRLF line endings, ready to APPEND) and the id in its marker."""

    message: bytes
    id: str


def message_id(raw: bytes, secret: bytes) -> str:
    """The stable id of `raw`: HMAC-SHA256 under the installation's `secret`, 160 bits, base32 lower case.

    Same bytes and same secret always give the same id; without the secret the id says nothing about
    the message, so the server cannot match it against another user's mail.
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the id secret must hold at least {MIN_SECRET_BYTES} bytes")
    digest = hmac.new(secret, raw, hashlib.sha256).digest()[:ID_BYTES]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def seal(
    raw: bytes,
    gpg: GnuPG,
    recipients: Sequence[str],
    id_secret: bytes,
    *,
    outer_headers: Sequence[str] = DEFAULT_OUTER_HEADERS,
    replace_message_id: bool = False,
    encrypt_with: Encryptor | None = None,
) -> Sealed:
    """E for the original message `raw`, encrypted to every recipient; `restore(E) == raw` byte for byte.

    The outer header holds copies of the `outer_headers` fields of `raw` that are safe to copy (see
    docs/format.md), `Subject: [...]`, the marker and the subject ciphertext. With `replace_message_id`
    (Gmail) the outer Message-ID is a new unique one; the original stays inside. `raw` may be any
    bytes: input that does not start with a header field is sealed too, with only the fields found
    before its first empty line copied. Raises a RecipientKeyError subclass for an unusable key,
    ConfigError for an `outer_headers` name that cannot be copied, ValueError for an `id_secret` under
    16 bytes. Safe to call from several threads at once. Encrypts in process where it can
    (`openpgp.inprocess`, the same packets gpg writes); `encrypt_with=gpg` forces a gpg process.
    """
    # Any bytes are sealed, a message or not (an mbox "From " line, body text, no header at all):
    # what is on the server must not stay readable, and restore gives back exactly these bytes.
    section = HeaderSection.parse(raw)
    wanted = check_outer_headers(outer_headers)
    ident = message_id(raw, id_secret)
    # Each field is checked once: the copies inside (in M's order) include every copy outside.
    inner = [f for f in section.fields if (f.key in wanted or f.key in _INNER_KEYS) and f.is_copyable()]
    kept = [f for f in inner if f.key in wanted and not (replace_message_id and f.key == "message-id")]
    copies = [f.crlf() for f in kept]
    if replace_message_id:
        copies.append(b"Message-ID: <" + uuid.uuid4().hex.encode("ascii") + b"@imapcrypt.invalid>\r\n")
    shown = _subject_text(section)[:MAX_SUBJECT_CHARS]
    openpgp = encrypt_with or encryptor(gpg)
    subject_cipher = openpgp.encrypt(shown.encode("utf-8", "replace"), recipients, armor=False)
    outer = [
        *copies,
        f"Subject: {HIDDEN_SUBJECT}\r\n".encode("ascii"),
        f"{MARKER_HEADER}: {marker_value(ident)}\r\n".encode("ascii"),
        _folded(SUBJECT_HEADER, base64.b64encode(subject_cipher)),
    ]
    # Unnamed temporaries: each copy of a large message is freed as soon as the next one exists.
    armored = _crlf(openpgp.encrypt(_inner_entity(raw, section, inner, outer), recipients))
    boundary = _boundary(armored)
    message = b"".join(
        [
            *outer[:-2],
            b"MIME-Version: 1.0\r\n",
            *outer[-2:],
            b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n',
            b' boundary="' + boundary + b'"\r\n',
            _CRLF,
            _PREAMBLE,
            b"--" + boundary + _CRLF,
            b"Content-Type: application/pgp-encrypted\r\n",
            b"Content-Description: PGP/MIME version identification\r\n",
            _CRLF,
            b"Version: 1\r\n",
            _CRLF,
            b"--" + boundary + _CRLF,
            b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n',
            b"Content-Description: OpenPGP encrypted message\r\n",
            b'Content-Disposition: inline; filename="encrypted.asc"\r\n',
            _CRLF,
            armored,
            _CRLF,
            b"--" + boundary + b"--\r\n",
        ]
    )
    return Sealed(message, ident)


def restore(
    encrypted: bytes, gpg: GnuPG, passphrase: str | None = None, *, max_bytes: int = DEFAULT_MAX_OUTPUT
) -> bytes:
    """The original message M of an E that `seal` wrote, exactly the bytes that were sealed.

    Raises EnvelopeError if `encrypted` is not an imapcrypt message or its decrypted content is not the
    v1 inner entity, DecryptError if it does not decrypt (OutputLimitError if it would decrypt to more
    than `max_bytes`); never returns a partial message.
    """
    if classify(encrypted) is not Kind.OURS:
        raise EnvelopeError("this is not a message imapcrypt encrypted", "restore only imapcrypt's copies")
    armored = armor_block(encrypted)
    if not armored:
        raise EnvelopeError("the encrypted message has no OpenPGP part", "the copy is damaged; keep it")
    inner = gpg.decrypt(armored + _CRLF, passphrase, max_output=max_bytes)
    return _child_of(inner)


def subject(encrypted: bytes, gpg: GnuPG, passphrase: str | None = None) -> str:
    """The original's decoded subject, from E's `X-Imapcrypt-Subject` alone (header bytes suffice).

    "" if the original had no Subject; cut at MAX_SUBJECT_CHARS characters (restore has it whole).
    Raises EnvelopeError if the header is missing or malformed, DecryptError if it does not decrypt
    (OutputLimitError if it decrypts to more than a subject can be).
    """
    field = HeaderSection.parse(encrypted).first(SUBJECT_HEADER)
    if field is None:
        raise EnvelopeError(f"the message has no {SUBJECT_HEADER} header", "restore it to read its subject")
    try:
        cipher = base64.b64decode(b"".join(field.value.split()), validate=True)
    except binascii.Error as exc:
        raise EnvelopeError(f"the {SUBJECT_HEADER} header is damaged", "restore the message") from exc
    # A forged copy's subject may be a compression bomb: a real one is at most MAX_SUBJECT_CHARS.
    return gpg.decrypt(cipher, passphrase, max_output=MAX_SUBJECT_BYTES).decode("utf-8", "replace")


def check_outer_headers(names: Sequence[str]) -> frozenset[str]:
    """The header names (lower case) to leave outside, or ConfigError naming one that may not be."""
    return _checked_outer_headers(tuple(names))


@functools.lru_cache(maxsize=16)  # an account's names are checked once, not for every message
def _checked_outer_headers(names: tuple[str, ...]) -> frozenset[str]:
    for name in names:
        key = name.lower()
        if not _FIELD_NAME.match(name) or key in _NOT_COPYABLE or key.startswith("content-"):
            raise ConfigError(
                f"the header {name!r} cannot be copied outside the encrypted message",
                "remove it from outer_headers (Subject, MIME-Version and Content-* are never copied)",
            )
    return frozenset(name.lower() for name in names)


def _subject_text(section: HeaderSection) -> str:
    field = section.first("Subject")
    return decode_words(field.text()) if field else ""


def _inner_entity(raw: bytes, section: HeaderSection, inner: list[Field], outer: list[bytes]) -> bytes:
    """The entity the armored part decrypts to: protected-header copies (`inner`), HP-Outer lines, then M."""
    boundary = _boundary(raw)
    copies = [f.crlf() for f in inner]
    subject_field = section.first("Subject")
    if subject_field is not None and not subject_field.is_copyable():
        # The raw field cannot be written (bare 8-bit, controls): give readers the decoded subject.
        copies.append(_encoded_subject(section))
    hp_outer = [b"HP-Outer: " + field for field in outer]
    return b"".join(
        [
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'";\r\n',
            b' protected-headers="v1"; hp="cipher"\r\n',
            *copies,
            *hp_outer,
            _CRLF,
            b"--" + boundary + _CRLF,
            raw,
            _CRLF,
            b"--" + boundary + b"--\r\n",
        ]
    )


def _encoded_subject(section: HeaderSection) -> bytes:
    text = _subject_text(section).replace("\r", " ").replace("\n", " ")
    encoded = email.header.Header(text, "utf-8", header_name="Subject").encode(linesep="\r\n")
    return b"Subject: " + encoded.encode("ascii") + _CRLF


def _child_of(inner: bytes) -> bytes:
    """The bytes of the inner entity's single child part: exactly M (RFC 2046 §5.1.1)."""
    section = HeaderSection.parse(inner)
    content_type = ContentType.of(section)
    boundary = content_type.params.get("boundary", "").encode("ascii", "replace")
    opening = b"--" + boundary + _CRLF
    closing = _CRLF + b"--" + boundary + b"--\r\n"
    body = inner[section.body_start :]
    if (
        content_type.mime_type != "multipart/mixed"
        or content_type.params.get("protected-headers") != "v1"
        or not boundary
        or not body.startswith(opening)
        or not body.endswith(closing)
    ):
        raise EnvelopeError("the decrypted message is not an imapcrypt v1 entity", "the copy is damaged")
    child = body[len(opening) : len(body) - len(closing)]
    if boundary in child:
        raise EnvelopeError("the decrypted message holds more than one part", "the copy is damaged")
    return child


def _crlf(armored: bytes) -> bytes:
    """Armor (ASCII lines) with CRLF line endings, whichever endings gpg wrote."""
    if b"\r" in armored[:100]:
        armored = armored.replace(b"\r\n", b"\n")
    return armored.replace(b"\n", b"\r\n")


def _boundary(avoid: bytes) -> bytes:
    """A random MIME boundary that occurs nowhere in `avoid`."""
    while True:
        boundary = b"=_imapcrypt_" + secrets.token_hex(16).encode("ascii")
        if boundary not in avoid:
            return boundary


def _folded(name: str, value: bytes) -> bytes:
    """`name: value` folded into lines of at most 78 octets; `value` has no blanks (base64)."""
    first = _FOLD - len(name) - 2
    pieces = [value[:first]] + [value[i : i + _FOLD] for i in range(first, len(value), _FOLD)]
    return name.encode("ascii") + b": " + b"\r\n ".join(p for p in pieces if p) + _CRLF
