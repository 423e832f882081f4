"""ENVELOPE and BODYSTRUCTURE of an original as RFC 3501 says, where pymap 0.36 says otherwise.

What a client is given is compared with what Dovecot gives for the same original (tests/test_serve.py):
- ENVELOPE holds the header fields as they stand: the Date field's own text, a subject and display
  names still MIME-encoded (pymap decodes them and sends 8-bit UTF-8, which an IMAP4rev1 client
  without UTF8=ACCEPT is not promised, and rewrites the date), NIL for a missing display name.
- BODYSTRUCTURE counts each part's size and lines over its body (pymap counts the part's header, the
  line end that belongs to the next boundary, and one line too many) and gives no disposition rather
  than pymap's single quoted string, a form RFC 3501 does not allow.
The header is read with imapcrypt's own reader (message/headers.py), as the encrypted format does.
"""

from __future__ import annotations

import email.utils

from pymap.bytes import Writeable, WriteStream
from pymap.message import BaseLoadedMessage
from pymap.mime import MessageContent
from pymap.parsing.primitives import List, Nil, String
from pymap.parsing.response.fetch import (
    BodyStructure,
    ContentBodyStructure,
    EnvelopeStructure,
    MessageBodyStructure,
    MultipartBodyStructure,
    TextBodyStructure,
)

from imapcrypt.message.headers import HeaderSection

_ADDRESS_FIELDS = ("from", "sender", "reply-to", "to", "cc", "bcc")


def _nstring(value: str | None) -> Writeable:
    return String.build(value) if value is not None else Nil()


def _addresses(values: list[str]) -> Writeable:
    """An address list as ENVELOPE writes it: ((name NIL mailbox host) ...), NIL when there is none."""
    found = [(name, address) for name, address in email.utils.getaddresses(values) if address]
    if not found:
        return Nil()
    entries: list[Writeable] = []
    for name, address in found:
        mailbox, _, host = address.rpartition("@") if "@" in address else (address, "", "")
        entries.append(List([_nstring(name or None), Nil(), _nstring(mailbox), _nstring(host or None)]))
    return List(entries)


class RawEnvelope(EnvelopeStructure):
    """ENVELOPE written from the header fields as they stand (RFC 3501 7.4.2)."""

    def __init__(self, header: bytes, parsed: EnvelopeStructure) -> None:
        # pymap's SEARCH reads the parsed (decoded) fields: they stay, only what is written changes.
        super().__init__(
            parsed.date,
            parsed.subject,
            parsed.from_,
            parsed.sender,
            parsed.reply_to,
            parsed.to,
            parsed.cc,
            parsed.bcc,
            parsed.in_reply_to,
            parsed.message_id,
        )
        section = HeaderSection.parse(header)
        self._fields: dict[str, list[str]] = {}
        for field in section.fields:
            self._fields.setdefault(field.key, []).append(field.text())

    def _first(self, name: str) -> str | None:
        values = self._fields.get(name)
        return values[0] if values else None

    def _list(self, name: str, fallback: str | None = None) -> Writeable:
        values = self._fields.get(name) or (self._fields.get(fallback, []) if fallback else [])
        return _addresses(values)

    @property
    def _value(self) -> Writeable:
        return List(
            [
                _nstring(self._first("date")),
                _nstring(self._first("subject")),
                self._list("from"),
                self._list("sender", "from"),  # RFC 3501: Sender and Reply-To default to From
                self._list("reply-to", "from"),
                self._list("to"),
                self._list("cc"),
                self._list("bcc"),
                _nstring(self._first("in-reply-to")),
                _nstring(self._first("message-id")),
            ]
        )

    def write(self, writer: WriteStream) -> None:
        """Write the ENVELOPE."""
        self._value.write(writer)

    def __bytes__(self) -> bytes:
        return bytes(self._value)


class LoadedOriginal(BaseLoadedMessage):
    """pymap's loaded message, with ENVELOPE and BODYSTRUCTURE as RFC 3501 says (see the module)."""

    @classmethod
    def _get_envelope_structure(cls, msg: MessageContent) -> EnvelopeStructure:
        return RawEnvelope(bytes(msg.header), super()._get_envelope_structure(msg))

    @classmethod
    def _get_size_with_lines(cls, msg: MessageContent) -> tuple[int, int]:
        body = bytes(msg.body)
        return len(body), body.count(b"\n")

    @classmethod
    def _get_body_structure(cls, msg: MessageContent) -> BodyStructure:
        found = super()._get_body_structure(msg)
        found.content_disposition = None  # valid; the part's MIME header has the disposition
        if isinstance(found, ContentBodyStructure):  # an attachment's size, too, is its body's
            found.size = len(bytes(msg.body))
        elif isinstance(found, MultipartBodyStructure):
            # The line end before a boundary belongs to the boundary (RFC 2046), not to the part.
            for part, content in zip(found.parts, msg.body.nested, strict=True):
                if isinstance(part, ContentBodyStructure) and bytes(content.body).endswith(b"\r\n"):
                    part.size -= 2
                    if isinstance(part, TextBodyStructure | MessageBodyStructure):
                        part.lines -= 1
        return found
