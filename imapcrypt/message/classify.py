"""What a message is, as far as encrypting it goes (docs/format.md).

`classify` tells plaintext from mail that is already encrypted: by imapcrypt (`X-Imapcrypt` on a
`multipart/encrypted` message), by its sender with PGP/MIME, inline PGP or S/MIME. Signed-only mail is
plaintext. It reads a whole message or the header fields in `CLASSIFY_HEADERS` alone.
"""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import enum
import re

from imapcrypt.message.headers import ContentType, HeaderSection, parameters

MARKER_HEADER = "X-Imapcrypt"
MARKER_VERSION = "1"
_MARKER_ID = re.compile(r"^[a-z2-7]{26,}$")

# Every field classify looks at: the engine fetches these with BODY.PEEK[HEADER.FIELDS (...)].
CLASSIFY_HEADERS: tuple[str, ...] = (
    "Content-Type",
    "Content-Disposition",
    "Content-Transfer-Encoding",
    MARKER_HEADER,
)

_ARMOR_BEGIN = b"-----BEGIN PGP MESSAGE-----"
_ARMOR_END = b"-----END PGP MESSAGE-----"
_SMIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
# smime-type values that carry no encryption: the content is readable by anyone, so it is plaintext.
_SMIME_NOT_ENCRYPTED = ("signed-data", "certs-only", "compressed-data")


class Kind(enum.Enum):
    """What a message is: the engine encrypts PLAINTEXT and leaves every other kind alone."""

    PLAINTEXT = "plaintext"
    OURS = "ours"
    PGP_MIME = "pgp-mime"
    INLINE_PGP = "inline-pgp"
    SMIME = "smime"


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


def classify(raw: bytes) -> Kind:
    """The kind of `raw`, a whole message or its header bytes alone; never raises.

    From headers alone an inline-PGP message looks like PLAINTEXT (the armor is in the body): classify
    the full message again before encrypting it. Input that is not a message at all is PLAINTEXT here
    and refused by `seal`.
    """
    section = HeaderSection.parse(raw)
    content_type = ContentType.of(section)
    if content_type.mime_type == "multipart/encrypted":
        marker = section.first(MARKER_HEADER)
        if marker is not None and marker_id(marker.value) is not None:
            return Kind.OURS
        return Kind.PGP_MIME
    if _is_smime_enveloped(section, content_type):
        return Kind.SMIME
    if _may_hold_armor(raw, section.body_start) and _is_inline_pgp(raw):
        return Kind.INLINE_PGP
    return Kind.PLAINTEXT


def _is_smime_enveloped(section: HeaderSection, content_type: ContentType) -> bool:
    if content_type.mime_type in _SMIME_TYPES:
        # Old agents leave smime-type out; most of those messages are enveloped (RFC 8551 §3.2.2).
        return content_type.params.get("smime-type", "").lower() not in _SMIME_NOT_ENCRYPTED
    if content_type.mime_type == "application/octet-stream":
        disposition = section.first("Content-Disposition")
        names = [content_type.params.get("name", "")]
        if disposition is not None:
            names.append(parameters("Content-Disposition", disposition.text()).get("filename", ""))
        return any(name.lower().endswith(".p7m") for name in names)
    return False


def _armor_patterns() -> tuple[bytes, ...]:
    # The armor line as written and as it appears in base64 at each of the three byte alignments.
    patterns = [_ARMOR_BEGIN]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + _ARMOR_BEGIN)
        patterns.append(encoded[4 if pad else 0 : -4])
    return tuple(patterns)


_PATTERNS = _armor_patterns()


def _may_hold_armor(raw: bytes, body_start: int) -> bool:
    # A cheap scan first: parsing a 25 MB message costs about as much as encrypting it.
    return any(raw.find(pattern, body_start) >= 0 for pattern in _PATTERNS)


def _is_inline_pgp(raw: bytes) -> bool:
    """True if the first text/plain part (not an attachment) starts with an armored PGP message.

    Only the start counts: a message that quotes an armored block further down is plaintext, because
    leaving plaintext unencrypted is worse than encrypting an inline-PGP message a second time.
    """
    try:
        return _first_text_is_armor(email.message_from_bytes(raw, policy=email.policy.compat32))
    except Exception:  # the email package raises assorted errors on adversarial MIME; classify must not
        return False


def _first_text_is_armor(message: email.message.Message) -> bool:
    for part in message.walk():
        if part.get_content_maintype() == "multipart":
            continue
        if part.get_content_type() != "text/plain":
            return False
        if str(part.get("Content-Disposition", "")).lower().startswith("attachment"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return False
        text = payload.lstrip()
        return text.startswith(_ARMOR_BEGIN) and _ARMOR_END in text
    return False
