"""What makes a message one of imapcrypt's own copies (docs/format.md), decided here and nowhere else.

A copy is a `multipart/encrypted` message whose `X-Imapcrypt` field carries a v1 marker with its id.
`classify` (is this message ours?), `envelope` (writing and opening copies) and the engine (which copy
on the server belongs to which journal intent) all read these facts through `copy_id`, and find the
armored OpenPGP block through `armor_block`, so there is one standard for "ours" everywhere.

Those header facts say what a message claims to be; anyone with the public key can write them. Whether
a copy on the server is the one imapcrypt sent is decided by the engine from its bytes (`digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from imapcrypt.message.headers import ContentType, HeaderSection

MARKER_HEADER = "X-Imapcrypt"
MARKER_VERSION = "1"
ENCRYPTED_TYPE = "multipart/encrypted"
ARMOR_BEGIN = b"-----BEGIN PGP MESSAGE-----"
ARMOR_END = b"-----END PGP MESSAGE-----"
_MARKER_ID = re.compile(r"^[a-z2-7]{26,}$")


def marker_id(value: str | bytes) -> str | None:
    """The id in an `X-Imapcrypt` value such as "v=1; id=…", or None if it is not a v1 marker we wrote."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    params: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, val = item.partition("=")
        if sep:
            params.setdefault(key.strip().lower(), val.strip())
    ident = params.get("id", "")
    if params.get("v") != MARKER_VERSION or not _MARKER_ID.match(ident):
        return None
    return ident


def marker_value(ident: str) -> str:
    """The `X-Imapcrypt` header value that carries `ident` (what `marker_id` reads back)."""
    return f"v={MARKER_VERSION}; id={ident}"


def copy_id_of(section: HeaderSection) -> str | None:
    """The marker id when the parsed header `section` is that of an imapcrypt copy, else None."""
    if ContentType.of(section).mime_type != ENCRYPTED_TYPE:
        return None
    marker = section.first(MARKER_HEADER)
    return None if marker is None else marker_id(marker.value)


def copy_id(raw: bytes) -> str | None:
    """The marker id when `raw` (a whole message or its header bytes alone) claims to be an imapcrypt
    copy: `multipart/encrypted` with a v1 `X-Imapcrypt` marker. None for anything else; never raises."""
    return copy_id_of(HeaderSection.parse(raw))


def armor_block(message: bytes) -> bytes:
    """The armored OpenPGP message in the body of `message`, BEGIN to END line inclusive; b"" if none.

    Only the body is searched: a copied header field (a display name, say) may quote an armor line.
    """
    start = message.find(ARMOR_BEGIN, HeaderSection.parse(message).body_start)
    end = message.find(ARMOR_END, start) if start >= 0 else -1
    return message[start : end + len(ARMOR_END)] if end >= 0 else b""


def digest(data: bytes, secret: bytes) -> str:
    """HMAC-SHA256 of `data` under the installation's id secret, in hex: what the journal records of a
    copy sent, to know it again byte for byte. Keyed, because a restore's copy is the plaintext: the
    journal must not let anyone confirm a guess of a message's content."""
    return hmac.new(secret, data, hashlib.sha256).hexdigest()
