"""Per-message claims: how installations sharing one mailbox never encrypt the same message twice.

Each installation has one claim keyword, `$ImapcryptClaim` + 8 hex digits of its install id (kept in its
data dir). Before fetching the bodies of messages to encrypt, the engine claims them; it deletes an
original only while its own keyword is still on it. docs/engine.md "Many installations, one mailbox"
gives the protocol and why it is safe; this module is the only code that reads or writes claims.

Only one keyword per installation, never times or counters: Dovecot's maildir allows 26 keywords per
mailbox, and the provider learns nothing but "some installation is working on this message".
"""

from __future__ import annotations

import enum
import functools
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from imapcrypt.errors import ServerError, TransientError
from imapcrypt.imap.session import Session
from imapcrypt.private import private_dir, private_file

log = logging.getLogger(__name__)

PREFIX = b"$ImapcryptClaim"
# A claim seen unchanged this long is stale: its holder crashed or lost its connection for good.
DEFAULT_LEASE_SECONDS = 600.0
# Rounds of add-then-check after both contenders backed off, each after a random pause (breaks ties).
CHECK_ROUNDS = 4
INSTALL_ID_FILE = "install-id"
# How many messages under other installations' claims one session keeps an eye on at most.
MAX_REMEMBERED = 100_000


class Mode(enum.Enum):
    """How claims are made on a server (docs/engine.md "Many installations, one mailbox")."""

    NONE = "no coordination on this server: run imapcrypt on one computer only"
    CONDSTORE = "claims by CONDSTORE"
    CHECK = "claims by add-then-check (slower)"


def install_id(data_dir: Path) -> str:
    """This installation's stable random id (32 hex digits), created on first use, mode 0600."""
    private_dir(data_dir)
    path = data_dir / INSTALL_ID_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
        return text
    text = secrets.token_hex(16)
    path.write_text(text + "\n")
    private_file(path)
    return text


def claim_keyword(data_dir: Path) -> bytes:
    """The one IMAP keyword by which this installation claims messages."""
    return PREFIX + install_id(data_dir)[:8].encode()


def is_claim(flag: bytes) -> bool:
    """Whether `flag` is some installation's claim keyword (case-insensitive, as IMAP keywords are)."""
    return flag.lower().startswith(PREFIX.lower())


def without_claims(flags: Iterable[bytes]) -> tuple[bytes, ...]:
    """`flags` minus every claim keyword: a copy never carries a claim."""
    return tuple(f for f in flags if not is_claim(f))


def mode_for(session: Session, permanent_flags: Sequence[bytes] | None) -> Mode:
    """How this server's folder can be claimed: keywords must be storable (PERMANENTFLAGS with `\\*`,
    or no PERMANENTFLAGS said at all, which RFC 3501 reads as "all flags are permanent")."""
    if permanent_flags is not None and b"\\*" not in permanent_flags:
        return Mode.NONE
    return Mode.CONDSTORE if session.can_condstore else Mode.CHECK


class Claims:
    """One installation's claims in one session. Remembers, by its own monotonic clock, when it first
    saw each other installation's claim (to tell a stale one) and when it made each of its own."""

    def __init__(
        self,
        session: Session,
        keyword: bytes | None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = session
        self.keyword = keyword
        self.lease = lease_seconds
        self.monotonic = monotonic
        self.pause = pause
        self._modes: dict[str, Mode] = {}
        # (folder, uid) -> other installation's keyword -> when this session first saw it there.
        self._first_seen: dict[tuple[str, int], dict[bytes, float]] = {}
        self._mine: dict[tuple[str, int], float] = {}

    # -- the server's mechanism, decided once per folder ----------------------------------------
    def mode(self, folder: str) -> Mode:
        """The folder's mechanism (NONE until `opened` ran, and always without a keyword)."""
        return self._modes.get(folder, Mode.NONE) if self.keyword else Mode.NONE

    def decide(self, folder: str, permanent_flags: Sequence[bytes] | None) -> None:
        """Decide the folder's mechanism, once per folder and session (before recovery needs it)."""
        if self.keyword and folder not in self._modes:
            self._modes[folder] = mode_for(self.session, permanent_flags)
            log.info("folder %s: %s", folder, self._modes[folder].value)

    def release_leftovers(self, folder: str) -> None:
        """Take back our claims a crash left behind.

        Call after recovery: by then the journal has no intent in `folder`, so every message still
        carrying our keyword was claimed by a run that never finished it.
        """
        if self.mode(folder) is Mode.NONE:
            return
        left = self._guarded(folder, lambda: self.session.search_keyword(self._kw))
        if left:
            log.info("folder %s: releasing %d claim(s) left by an interrupted run", folder, len(left))
            self.release(folder, left)

    @property
    def _kw(self) -> bytes:
        return self.keyword or b""

    def _guarded(self, folder: str, command: Callable[[], list[int]]) -> list[int] | None:
        """Run a claim command; a server that refuses keywords (BAD/NO) turns claims off for the folder."""
        try:
            return command()
        except TransientError:
            raise
        except ServerError as exc:
            log.warning("folder %s: keywords refused (%s); no coordination", folder, exc.message)
            self._modes[folder] = Mode.NONE
            return None

    # -- claiming -------------------------------------------------------------------------------
    def others(self, flags: Iterable[bytes]) -> set[bytes]:
        """Other installations' claim keywords among `flags`."""
        mine = self._kw.lower()
        return {f for f in flags if is_claim(f) and f.lower() != mine}

    def holds(self, flags: Iterable[bytes]) -> bool:
        """Whether our own claim keyword is among `flags`."""
        mine = self._kw.lower()
        return any(f.lower() == mine for f in flags)

    def take(
        self, folder: str, flags: dict[int, tuple[bytes, ...]], modseqs: dict[int, int] | None = None
    ) -> set[int]:
        """Claim the messages `flags` names (their flags from the header FETCH); the UIDs now ours.

        A message under another installation's live claim is skipped (the watermark holds); one whose
        claim was seen unchanged for the lease is taken over: the stale keyword is removed first.
        With claims off every message is ours, as with one installation.
        """
        if self.mode(folder) is Mode.NONE:
            return set(flags)
        now = self.monotonic()
        self._prune()
        free: list[int] = []
        stale: dict[bytes, list[int]] = {}
        for uid, message_flags in flags.items():
            held = self.others(message_flags)
            expired = self._stale(folder, uid, held, now)
            if held - expired:
                continue
            for kw in expired:
                log.info(
                    "folder %s: uid %d: a claim unchanged for %.0fs is stale; taking over",
                    folder,
                    uid,
                    self.lease,
                )
                stale.setdefault(kw, []).append(uid)
            free.append(uid)
        for kw, uids in stale.items():
            self.session.remove_flags(uids, [kw])
        if not free:
            return set()
        started = self.monotonic()
        if self.mode(folder) is Mode.CONDSTORE:
            # The header FETCH's MODSEQs make the claim one STORE; a stale claim just removed
            # changed its message, so that one is read again.
            changed = {uid for uids in stale.values() for uid in uids}
            known = {
                uid: (flags[uid], (modseqs or {})[uid])
                for uid in free
                if uid not in changed and (modseqs or {}).get(uid, 0) > 0
            }
            won = self._take_condstore(folder, free, known)
        else:
            won = self._take_checked(folder, free)
        for uid in won:
            self._mine[(folder, uid)] = started
        return won

    def _stale(self, folder: str, uid: int, held: set[bytes], now: float) -> set[bytes]:
        """Those of the claims `held` on a message that were seen on it, unchanged, for a lease."""
        # A claim not seen this time is forgotten: seen again later, it is a new one.
        seen = {kw: at for kw, at in self._first_seen.get((folder, uid), {}).items() if kw in held}
        seen.update({kw: now for kw in held if kw not in seen})
        if seen:
            self._first_seen[(folder, uid)] = seen
        else:
            self._first_seen.pop((folder, uid), None)
        return {kw for kw, at in seen.items() if now - at >= self.lease}

    def _prune(self) -> None:
        """Claims on messages gone meanwhile are never seen again: past a bound, forget the oldest half."""
        if len(self._first_seen) > MAX_REMEMBERED:
            by_age = sorted(self._first_seen, key=lambda key: min(self._first_seen[key].values()))
            for key in by_age[: len(by_age) // 2]:
                del self._first_seen[key]

    def _take_condstore(
        self, folder: str, uids: list[int], known: dict[int, tuple[tuple[bytes, ...], int]]
    ) -> set[int]:
        """One conditional STORE (after a FETCH (FLAGS MODSEQ) unless the header FETCH's MODSEQs are
        `known` for all): a message changed since its flags were read (another claim, a stale one
        removed) is answered MODIFIED and is not ours."""
        # MODSEQs of one FETCH only: one changed after an earlier FETCH may be below the highest of a
        # later one, and would pass the compare-and-set. So all of them from one, or all afresh.
        current = known if set(uids) <= set(known) else self.session.fetch_flags_modseq(uids)
        free = {uid: modseq for uid, (flags, modseq) in current.items() if not self.others(flags)}
        if not free:
            return set()
        # Any change after the FETCH gets a MODSEQ above every MODSEQ it returned, so the highest of
        # them makes a per-message compare-and-set for the whole set in one command.
        since = max(free.values())
        modified = self._guarded(
            folder, lambda: self.session.add_flags_unchanged_since(sorted(free), [self._kw], since)
        )
        if modified is None:
            return set(uids)  # keywords refused: no coordination, as with one installation
        lost = set(modified)
        if lost:
            # Our keyword was not stored on them, but a server may have: take it off to be sure.
            self.session.remove_flags(sorted(lost & set(free)), [self._kw])
        return set(free) - lost

    def _take_checked(self, folder: str, uids: list[int]) -> set[int]:
        """Add our keyword, then read the flags back: a message is ours only if no other claim is on
        it. On a tie both back off and try again after a random pause."""
        won: set[int] = set()
        todo = list(uids)
        for round_ in range(CHECK_ROUNDS):
            if not todo:
                break
            added = self._guarded(folder, functools.partial(self._add, list(todo)))
            if added is None:
                return set(uids)
            after = self.session.fetch_flags(todo)
            contested = [uid for uid in todo if uid in after and self.others(after[uid])]
            won |= {uid for uid in todo if uid in after and not self.others(after[uid])}
            if not contested:
                break
            self.session.remove_flags(contested, [self._kw])
            if round_ + 1 == CHECK_ROUNDS:
                break
            self.pause(random.uniform(0.01, 0.05) * (round_ + 1))  # noqa: S311 - a tie breaker, not a secret
            again = self.session.fetch_flags(contested)
            todo = [uid for uid in contested if uid in again and not self.others(again[uid])]
        return won

    def _add(self, uids: list[int]) -> list[int]:
        self.session.add_flags(uids, [self._kw])
        return uids

    # -- keeping and letting go ------------------------------------------------------------------
    def confirm(self, folder: str, uids: Sequence[int]) -> tuple[set[int], set[int], set[int]]:
        """Before deleting originals: (still ours, taken over, gone) among `uids`.

        Ours means our keyword is still on it and our claim is younger than half the lease (so a
        taker-over, who waits a whole lease from when it first saw our claim, cannot be under way).
        """
        if self.mode(folder) is Mode.NONE or not uids:
            return set(uids), set(), set()
        return self.judge(folder, uids, self.current_flags(uids))

    def current_flags(self, uids: Sequence[int]) -> dict[int, tuple[bytes, ...]]:
        """FLAGS of `uids` as they are now, expunged ones absent.

        A NOOP first: a server may not report another session's EXPUNGE during a FETCH (RFC 3501
        §7.4.1) and then answers for a message that is gone with the flags it last knew.
        """
        self.session.noop()
        return self.session.fetch_flags(uids)

    def judge(
        self, folder: str, uids: Sequence[int], current: dict[int, tuple[bytes, ...]]
    ) -> tuple[set[int], set[int], set[int]]:
        """`confirm` on flags already fetched: (still ours, taken over, gone)."""
        now = self.monotonic()
        ours: set[int] = set()
        lost: set[int] = set()
        for uid in uids:
            if uid not in current:
                continue
            # A claim this session did not make (recovery after a crash) counts only by its keyword.
            fresh = now - self._mine.get((folder, uid), now) < self.lease / 2
            (ours if fresh and self.holds(current[uid]) else lost).add(uid)
        return ours, lost, set(uids) - set(current)

    def made(self, folder: str, uids: Iterable[int]) -> set[int]:
        """Those of `uids` this session claimed and still holds."""
        return {uid for uid in uids if (folder, uid) in self._mine}

    def release(self, folder: str, uids: Iterable[int]) -> None:
        """Take our keyword off `uids` (parked, skipped, failed, or taken over)."""
        chosen = sorted(set(uids))
        for uid in chosen:
            self._mine.pop((folder, uid), None)
        if chosen and self.mode(folder) is not Mode.NONE:
            self.session.remove_flags(chosen, [self._kw])

    def forget(self, folder: str, uids: Iterable[int]) -> None:
        """Drop what is remembered about `uids` (their originals are gone)."""
        for uid in uids:
            self._mine.pop((folder, uid), None)
        gone = set(uids)
        for uid in gone:
            self._first_seen.pop((folder, uid), None)
