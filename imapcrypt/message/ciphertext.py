"""Proof that a message is already encrypted by its sender (docs/format.md "What is left alone").

A header that says "encrypted" proves nothing: anyone can wrap plaintext in `multipart/encrypted` or
call it `application/pkcs7-mime`. Each function here looks at the content and answers True only if
the encrypted part really is framed as ciphertext (OpenPGP session-key packets followed by one
encrypted data packet, or a CMS EnvelopedData) and nothing readable sits beside it. No key is used
and nothing is decrypted or decompressed, so a forged "ciphertext" of random bytes passes: what
matters is that nothing readable is left on the server. When in doubt the answer is False, and the
message is encrypted.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import re

from imapcrypt.message.copy import ARMOR_BEGIN as _BEGIN
from imapcrypt.message.copy import ARMOR_END as _END
from imapcrypt.openpgp import packets

# Armor header lines that PGP/MIME and inline-PGP writers add; anything else is treated as text.
_ARMOR_KEYS = frozenset({b"version", b"comment", b"charset", b"messageid"})
MAX_ARMOR_HEADERS = 5
MAX_ARMOR_HEADER_LINE = 80
_CHECKSUM = re.compile(rb"^=[A-Za-z0-9+/]{4}$")
# The sentence PGP/MIME writers put in the preamble (Thunderbird, Enigmail, K-9, Mutt, GPGTools).
_PGP_PREAMBLE = re.compile(
    rb"^This is an OpenPGP/MIME encrypted message(?: \(RFC [0-9]{4} and [0-9]{4}\))?\.?$", re.IGNORECASE
)
# ContentInfo contentType values whose content is encrypted: envelopedData, authEnvelopedData.
_CMS_ENCRYPTED_OIDS = (
    bytes.fromhex("2a864886f70d010703"),  # 1.2.840.113549.1.7.3
    bytes.fromhex("2a864886f70d0109100117"),  # 1.2.840.113549.1.9.16.1.23
)
_SMIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_SMIME_ENCRYPTED = ("", "enveloped-data", "authenveloped-data")
MAX_BER_DEPTH = 64


def is_pgp_mime(message: email.message.Message) -> bool:
    """RFC 3156 §4: exactly the version part and one OpenPGP message, with no text beside them."""
    if message.get_content_type() != "multipart/encrypted":
        return False
    if str(message.get_param("protocol", "")).lower() != "application/pgp-encrypted":
        return False
    parts = message.get_payload()
    if not isinstance(parts, list) or len(parts) != 2:
        return False
    control, data = parts
    return (
        _blank_or(message.preamble, _PGP_PREAMBLE)
        and _blank_or(message.epilogue, None)
        and isinstance(control, email.message.Message)
        and isinstance(data, email.message.Message)
        and _is_version_part(control)
        and data.get_content_type() == "application/octet-stream"
        and _holds_openpgp(data)
    )


def _is_version_part(part: email.message.Message) -> bool:
    """The PGP/MIME control part: application/pgp-encrypted holding "Version: 1" and nothing else."""
    if part.get_content_type() != "application/pgp-encrypted" or part.is_multipart():
        return False
    version = _decoded(part)
    return version is not None and b"".join(version.split()).lower() == b"version:1"


def is_smime(message: email.message.Message) -> bool:
    """RFC 8551 §3.3: one application/pkcs7-mime entity (or a `.p7m` octet stream) holding a CMS
    EnvelopedData or AuthEnvelopedData; a declared smime-type other than those two says no."""
    content_type = message.get_content_type()
    if content_type in _SMIME_TYPES:
        if str(message.get_param("smime-type", "")).lower() not in _SMIME_ENCRYPTED:
            return False
    elif content_type == "application/octet-stream":
        names = (str(message.get_param("name", "")), str(message.get_filename("")))
        if not any(name.lower().endswith(".p7m") for name in names):
            return False
    else:
        return False
    der = _decoded(message)
    return der is not None and is_cms_encrypted(der)


def is_inline_pgp(message: email.message.Message) -> bool:
    """Every leaf is an OpenPGP message and nothing else: a text/plain part that is one armored
    message (blank space around it at most), or an attachment that is OpenPGP ciphertext."""
    leaves = 0
    for part in message.walk():
        if part.get_content_maintype() == "message":
            return False  # an attached message's own header fields are readable text
        if part.is_multipart():
            if not _blank_or(part.preamble, None) or not _blank_or(part.epilogue, None):
                return False
            continue
        leaves += 1
        content_type = part.get_content_type()
        if content_type == "text/plain":
            data = _decoded(part)
            if data is None or not is_armored_message(data):
                return False
        elif content_type in ("application/octet-stream", "application/pgp-encrypted"):
            if not _holds_openpgp(part):
                return False
        else:
            return False
    return leaves > 0


def is_armored_message(data: bytes) -> bool:
    """`data` is one ASCII-armored OpenPGP message (RFC 9580 §6.2) with only blank space around it,
    at most a few short armor headers, and an encrypted message inside."""
    lines = [line.strip() for line in data.strip().splitlines()]
    if len(lines) < 3 or lines[0] != _BEGIN or lines[-1] != _END:
        return False
    body = lines[1:-1]
    headers = 0
    while body and body[0]:
        key, sep, _ = body[0].partition(b":")
        headers += 1
        if (
            not sep
            or key.strip().lower() not in _ARMOR_KEYS
            or len(body[0]) > MAX_ARMOR_HEADER_LINE
            or headers > MAX_ARMOR_HEADERS
        ):
            return False
        body = body[1:]
    if not body:
        return False
    body = body[1:]  # the blank line after the headers
    if body and _CHECKSUM.match(body[-1]):
        body = body[:-1]
    text = b"".join(body)
    if not text or b"-" in text or b"=" in text.rstrip(b"="):
        return False
    try:
        binary = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return packets.is_encrypted_message(binary)


def is_cms_encrypted(der: bytes) -> bool:
    """`der` is exactly one CMS ContentInfo (BER or DER) whose content type is envelopedData or
    authEnvelopedData and whose content starts as a SEQUENCE with an INTEGER version; headers and
    lengths only (RFC 5652 §3, §6.1; RFC 5083)."""
    try:
        outer = _tlv(der, 0, 0)
        if outer.tag != 0x30 or outer.end != len(der):
            return False
        oid = _tlv(der, outer.content, 1)
        if oid.tag != 0x06 or der[oid.content : oid.end] not in _CMS_ENCRYPTED_OIDS:
            return False
        explicit = _tlv(der, oid.end, 1)
        if explicit.tag != 0xA0 or explicit.end != outer.content_end:
            return False
        enveloped = _tlv(der, explicit.content, 2)
        if enveloped.tag != 0x30 or enveloped.end != explicit.content_end:
            return False
        return _tlv(der, enveloped.content, 3).tag == 0x02
    except _BerError:
        return False


class _BerError(ValueError):
    """Not well-formed BER."""


class _Tlv:
    """One BER element: tag octet, where its content starts and ends, and where the element ends."""

    __slots__ = ("content", "content_end", "end", "tag")

    def __init__(self, tag: int, content: int, content_end: int, end: int) -> None:
        self.tag = tag
        self.content = content
        self.content_end = content_end
        self.end = end


def _tlv(data: bytes, pos: int, depth: int) -> _Tlv:
    """The element at `pos`; indefinite lengths are followed to their end-of-contents octets."""
    if depth > MAX_BER_DEPTH or pos + 2 > len(data):
        raise _BerError("cut short or nested too deep")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _BerError("multi-octet tags do not occur in a ContentInfo header")
    first = data[pos + 1]
    content = pos + 2
    if first == 0x80:
        if not tag & 0x20:
            raise _BerError("indefinite length on a primitive element")
        inner = content
        while True:
            if data[inner : inner + 2] == b"\0\0":
                return _Tlv(tag, content, inner, inner + 2)
            inner = _tlv(data, inner, depth + 1).end
    if first & 0x80:
        size = first & 0x7F
        if size > 4 or content + size > len(data):
            raise _BerError("length out of range")
        length = int.from_bytes(data[content : content + size], "big")
        content += size
    else:
        length = first
    if content + length > len(data):
        raise _BerError("element runs past the end")
    return _Tlv(tag, content, content + length, content + length)


def _holds_openpgp(part: email.message.Message) -> bool:
    """The part's content is an OpenPGP encrypted message, armored or binary."""
    data = _decoded(part)
    if data is None or part.is_multipart():
        return False
    if data.lstrip().startswith(_BEGIN):
        return is_armored_message(data)
    return packets.is_encrypted_message(data)


def _decoded(part: email.message.Message) -> bytes | None:
    """The part's content with its transfer encoding undone, or None if that fails."""
    encoding = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if encoding not in ("7bit", "8bit", "binary", "base64", "quoted-printable"):
        return None
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    if encoding == "base64" and part.defects:
        return None  # python's lenient base64 skips junk; junk beside ciphertext may be text
    return payload


def _blank_or(text: str | None, allowed: re.Pattern[bytes] | None) -> bool:
    """True if a preamble or epilogue is absent, blank, or (with `allowed`) the one known sentence."""
    if text is None or not text.strip():
        return True
    stripped = text.strip().encode("utf-8", "surrogateescape")
    return allowed is not None and bool(allowed.match(stripped))
