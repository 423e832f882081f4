"""What a message is, as far as encrypting it goes (docs/format.md).

`classify` tells plaintext from mail that is already encrypted: by imapcrypt (`X-Imapcrypt` on a
`multipart/encrypted` message), or by its sender with PGP/MIME, inline PGP or S/MIME, which counts only
when the content proves it (message/ciphertext.py). Signed-only mail is plaintext. It reads a whole
message or the header fields in `CLASSIFY_HEADERS` alone.
"""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import enum
from collections.abc import Callable

from imapcrypt.message import ciphertext
from imapcrypt.message.copy import ARMOR_BEGIN, ENCRYPTED_TYPE, MARKER_HEADER, copy_id_of, marker_id
from imapcrypt.message.headers import ContentType, HeaderSection

__all__ = ["CLASSIFY_HEADERS", "MARKER_HEADER", "Kind", "classify", "marker_id"]

# Every field classify looks at: the engine fetches these with BODY.PEEK[HEADER.FIELDS (...)].
CLASSIFY_HEADERS: tuple[str, ...] = (
    "Content-Type",
    "Content-Disposition",
    "Content-Transfer-Encoding",
    MARKER_HEADER,
)

_SMIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")


class Kind(enum.Enum):
    """What a message is: the engine encrypts PLAINTEXT and leaves every other kind alone."""

    PLAINTEXT = "plaintext"
    OURS = "ours"
    PGP_MIME = "pgp-mime"
    INLINE_PGP = "inline-pgp"
    SMIME = "smime"


def classify(raw: bytes) -> Kind:
    """The kind of `raw`, a whole message or its header bytes alone; never raises.

    Mail counts as sender-encrypted only when its content proves it (message/ciphertext.py): from
    header bytes alone every message but our own copies is PLAINTEXT, so classify the whole message
    again before encrypting it. Anything that is not a message at all is PLAINTEXT too, and `seal`
    encrypts it byte for byte.
    """
    section = HeaderSection.parse(raw)
    content_type = ContentType.of(section)
    if copy_id_of(section) is not None:
        return Kind.OURS  # one standard for "ours" (message/copy.py), shared with the engine's recovery
    if section.body_start >= len(raw) or not section.starts_with_field:
        return Kind.PLAINTEXT  # header bytes alone prove nothing; no header, no MIME structure
    if content_type.mime_type == ENCRYPTED_TYPE:
        return Kind.PGP_MIME if _proven(ciphertext.is_pgp_mime, raw) else Kind.PLAINTEXT
    smime_like = content_type.mime_type in (*_SMIME_TYPES, "application/octet-stream")
    if smime_like and _proven(ciphertext.is_smime, raw):
        return Kind.SMIME
    if _may_hold_armor(raw, section.body_start) and _proven(ciphertext.is_inline_pgp, raw):
        return Kind.INLINE_PGP
    return Kind.PLAINTEXT


def _proven(proof: Callable[[email.message.Message], bool], raw: bytes) -> bool:
    """Run one of message/ciphertext.py's proofs on the parsed message; any failure means no."""
    try:
        return proof(email.message_from_bytes(raw, policy=email.policy.compat32))
    except Exception:  # the email package raises assorted errors (RecursionError too) on hostile MIME
        return False


def _armor_patterns() -> tuple[bytes, ...]:
    # The armor line as written and as it appears in base64 at each of the three byte alignments.
    patterns = [ARMOR_BEGIN]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + ARMOR_BEGIN)
        patterns.append(encoded[4 if pad else 0 : -4])
    return tuple(patterns)


_PATTERNS = _armor_patterns()


def _may_hold_armor(raw: bytes, body_start: int) -> bool:
    # A cheap scan first: parsing a 25 MB message costs about as much as encrypting it.
    return any(raw.find(pattern, body_start) >= 0 for pattern in _PATTERNS)
