"""How a folder's work is cut up: UIDs in batches, bodies in groups bounded by bytes (so memory stays
bounded whatever the mailbox holds), the copies ready to store, and the watermark that moves only over
UIDs fully handled."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from imapcrypt.errors import ImapcryptError
from imapcrypt.imap.session import MessageInfo
from imapcrypt.journal import Journal
from imapcrypt.message import envelope

# Bodies fetched and held at once: bounds memory whatever the mailbox holds. Encryption runs one group
# ahead of storing, so two groups (each at most half of this) are in memory at a time, each with its
# copies. 16 MiB groups still move over 50 MiB/s at 50 ms RTT (docs/engine.md, "Memory").
MAX_BYTES_IN_FLIGHT = 32 * 1024 * 1024
GROUP_BYTES = MAX_BYTES_IN_FLIGHT // 2
# Stored copies downloaded at once to compare them with what was sent: verification adds at most this
# much to the memory above.
VERIFY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Prepared:
    """A copy ready to be stored in place of the original `info`."""

    info: MessageInfo
    copy: bytes
    seal_id: str
    flags: tuple[bytes, ...]
    when: dt.datetime


def chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def by_bytes(infos: Sequence[MessageInfo], limit: int) -> Iterator[list[MessageInfo]]:
    group: list[MessageInfo] = []
    total = 0
    for info in infos:
        if group and total + info.size > limit:
            yield group
            group, total = [], 0
        group.append(info)
        total += info.size
    if group:
        yield group


@dataclass(frozen=True)
class Sealing:
    """A group whose bodies are being sealed on the worker pool."""

    group: list[MessageInfo]
    present: list[MessageInfo]
    futures: list[Future[envelope.Sealed | ImapcryptError | None]]


class Watermark:
    """Moves a folder's watermark over the longest run of handled UIDs from the start of `uids`.

    A UID that is not handled (too young, failed, still being sealed) holds it there: the watermark
    never passes a message that needs more work.
    """

    def __init__(self, journal: Journal, folder: str, uids: Sequence[int], enabled: bool) -> None:
        self.journal = journal
        self.folder = folder
        self.uids = uids
        self.enabled = enabled
        self.next = 0

    def advance(self, handled: set[int]) -> None:
        """Move up over every UID now handled, in order."""
        start = self.next
        while self.next < len(self.uids) and self.uids[self.next] in handled:
            self.next += 1
        if self.enabled and self.next > start:
            self.journal.advance_watermark(self.folder, self.uids[self.next - 1])
