"""How the engine reports what it does: a small typed callback protocol: the core knows no screen.

The CLI turns these into a progress bar and log lines; the tray app adapts them to Qt signals. No
event carries a subject, a body or an address list.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from imapcrypt.errors import ImapcryptError

Direction = Literal["encrypt", "restore"]


@dataclass(frozen=True)
class Progress:
    """Work done so far on one folder; `eta_seconds` is None until a rate is known."""

    account: str
    folder: str
    done: int
    total: int
    rate: float
    eta_seconds: float | None


@dataclass(frozen=True)
class MessageDone:
    """One message replaced: the original `uid` is gone and `new_uid` holds its verified copy."""

    account: str
    folder: str
    direction: Direction
    uid: int
    new_uid: int
    size: int


class EngineEvents(Protocol):
    """What the engine calls while it works; every method must return quickly."""

    def on_progress(self, progress: Progress) -> None:
        """Work advanced."""

    def on_message_done(self, done: MessageDone) -> None:
        """A message was replaced and its original deleted."""

    def on_error(self, error: ImapcryptError) -> None:
        """Something failed; the engine goes on with what it can, or stops if it cannot."""


class NoEvents:
    """Events nobody listens to."""

    def on_progress(self, progress: Progress) -> None:
        """Ignore progress."""

    def on_message_done(self, done: MessageDone) -> None:
        """Ignore a finished message."""

    def on_error(self, error: ImapcryptError) -> None:
        """Ignore an error (the engine also logs it)."""


class RateMeter:
    """Counts finished work and derives a rate and an ETA for `Progress`."""

    def __init__(self, account: str, folder: str, total: int, clock: Callable[[], float] = time.monotonic):
        self.account = account
        self.folder = folder
        self.total = total
        self.done = 0
        self._clock = clock
        self._started = clock()

    def advance(self, count: int = 1) -> Progress:
        """Count `count` more items done and return the progress so far."""
        self.done += count
        elapsed = self._clock() - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        remaining = max(self.total - self.done, 0)
        eta = remaining / rate if rate > 0 else None
        return Progress(self.account, self.folder, self.done, self.total, rate, eta)
