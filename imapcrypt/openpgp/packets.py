"""OpenPGP packet headers (RFC 9580 §4), read without decrypting or decompressing anything.

Two questions are answered here from the packet framing alone: is a blob an encrypted OpenPGP
message (session-key packets followed by one encrypted data packet that runs exactly to the end,
docs/format.md "What is left alone"), and to which key IDs is its session key encrypted. Reading
headers costs time linear in the number of packets and chunks and never allocates more than the
first bytes of each packet body, whatever the input claims.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

PKESK, SKESK, SED, MARKER, SEIPD, AEAD = 1, 3, 9, 10, 18, 20
SESSION_KEY_TAGS = frozenset({PKESK, SKESK})
ENCRYPTED_DATA_TAGS = frozenset({SED, SEIPD, AEAD})
HEAD_BYTES = 64  # enough of a body for every field read here (versions, key IDs)


class PacketError(ValueError):
    """The data is not well-formed OpenPGP packet framing."""


@dataclass(frozen=True)
class Packet:
    """One packet: its tag, where its framing ends, and the first HEAD_BYTES of its body."""

    tag: int
    end: int  # offset just past the packet (its last chunk, for partial lengths)
    head: bytes

    @property
    def version(self) -> int:
        """The body's first octet (every packet read here starts with a version), or -1 if empty."""
        return self.head[0] if self.head else -1


def packets(data: bytes, *, complete: bool = True) -> Iterator[Packet]:
    """Each packet of `data` in order.

    With `complete`, framing that runs past the end of `data` raises PacketError. Without it `data`
    may be the cut-off head of a message: the packet that runs past the end is still yielded (with
    what is there of its head) and reading stops.
    """
    pos = 0
    while pos < len(data):
        ctb = data[pos]
        if not ctb & 0x80:
            raise PacketError(f"octet {pos} is not a packet tag")
        if ctb & 0x40:
            tag = ctb & 0x3F
            end, head = _new_format_body(data, pos + 1, complete)
        else:
            tag = (ctb >> 2) & 0x0F
            size = (1, 2, 4, 0)[ctb & 3]
            start = pos + 1 + size
            if start > len(data):
                if complete:
                    raise PacketError("a packet header is cut short")
                return
            # Length type 3: the packet runs to the end of the data (RFC 9580 §4.2.2).
            length = int.from_bytes(data[pos + 1 : start], "big") if size else len(data) - start
            end, head = start + length, data[start : start + min(length, HEAD_BYTES)]
        if end > len(data):
            if complete:
                raise PacketError(f"packet with tag {tag} runs past the end of the data")
            yield Packet(tag, end, head)
            return
        yield Packet(tag, end, head)
        pos = end


def _new_format_body(data: bytes, pos: int, complete: bool) -> tuple[int, bytes]:
    """The end and head of a new-format body starting with its length octets at `pos`.

    Partial body lengths (RFC 9580 §4.2.1.4) are followed chunk by chunk without copying them.
    """
    head = b""
    while True:
        length, pos, partial = _new_length(data, pos)
        if not head:
            head = data[pos : pos + min(length, HEAD_BYTES)]
        pos += length
        if not partial or pos >= len(data):
            if partial and complete:
                raise PacketError("a partial-length packet ends without its last chunk")
            return pos, head


def _new_length(data: bytes, pos: int) -> tuple[int, int, bool]:
    if pos >= len(data):
        raise PacketError("a packet length is cut short")
    first = data[pos]
    if first < 192:
        return first, pos + 1, False
    if first < 224:
        if pos + 1 >= len(data):
            raise PacketError("a packet length is cut short")
        return ((first - 192) << 8) + data[pos + 1] + 192, pos + 2, False
    if first == 255:
        if pos + 5 > len(data):
            raise PacketError("a packet length is cut short")
        return int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5, False
    return 1 << (first & 0x1F), pos + 1, True


def is_encrypted_message(data: bytes) -> bool:
    """True if `data` is framed as an encrypted OpenPGP message and nothing else.

    That is: optional marker packets, at least one PKESK or SKESK packet of a known version, then one
    SED, SEIPD or AEAD packet that ends exactly where `data` ends. Nothing is decrypted, so a forged
    message with random bodies passes; what matters is that no readable packet (literal data,
    compressed data, a signature) sits outside the encryption.
    """
    seen_session_key = False
    try:
        for packet in packets(data):
            if packet.tag == MARKER and not seen_session_key:
                continue
            if (packet.tag == PKESK and packet.version in (3, 6)) or (
                packet.tag == SKESK and packet.version in (4, 5, 6)
            ):
                seen_session_key = True
            elif packet.tag in ENCRYPTED_DATA_TAGS and seen_session_key:
                return packet.end == len(data) and _data_version_ok(packet)
            else:
                return False
    except PacketError:
        return False
    return False


def _session_key_version_ok(packet: Packet) -> bool:
    if packet.tag == PKESK:
        return packet.version in (3, 6)
    return packet.tag == SKESK and packet.version in (4, 5, 6)


def _data_version_ok(packet: Packet) -> bool:
    if packet.tag == SED:
        return True  # no version octet: the body is ciphertext from its first octet
    if packet.tag == SEIPD:
        return packet.version in (1, 2)
    return packet.version == 1  # AEAD (LibrePGP)


def pkesk_key_ids(data: bytes) -> list[str]:
    """The recipient key IDs (16 upper-case hex digits) of the PKESK packets at the start of `data`.

    A v3 PKESK names an 8-octet key ID (all zero for a hidden recipient, "0000000000000000"); a v6
    PKESK names a fingerprint, of which the last 8 octets are returned (the v4-style key ID of a v6
    key is its first 8 octets, so a v6 fingerprint is reported whole instead). Reading stops at the
    first packet that is not a session-key packet; `data` may be the head of a longer message.
    """
    ids: list[str] = []
    try:
        for packet in packets(data, complete=False):
            if packet.tag not in SESSION_KEY_TAGS:
                break
            if packet.tag != PKESK:
                continue
            if packet.version == 3 and len(packet.head) >= 10:
                ids.append(packet.head[1:9].hex().upper())
            elif packet.version == 6 and len(packet.head) >= 2:
                size = packet.head[1]
                ids.append(packet.head[3 : 2 + size].hex().upper() if size else "0" * 16)
            else:
                ids.append("?")
    except PacketError:
        ids.append("?")
    return ids


def first_data_packet(data: bytes) -> tuple[int, int]:
    """Tag and version of the first packet after the session-key packets; (-1, -1) if there is none."""
    try:
        for packet in packets(data, complete=False):
            if packet.tag not in SESSION_KEY_TAGS:
                return packet.tag, packet.version
    except PacketError:
        pass
    return -1, -1
