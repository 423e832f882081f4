"""The engine (docs/engine.md): replace a folder's plaintext messages by encrypted copies, or back.

For every message: journal the intent, APPEND the copy with the original's flags and INTERNALDATE,
verify the stored copy, delete the original, journal the completion. A crash at any point leaves an
intent that the next run resolves first (copy present: finish the delete; absent: redo), so every
original exists exactly once afterwards, as itself or as its copy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.parser
import email.policy
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from imapcrypt.config.model import Account
from imapcrypt.errors import EnvelopeError, ImapcryptError, QuotaError, ServerError, TransientError
from imapcrypt.events import Direction, EngineEvents, MessageDone, NoEvents, RateMeter
from imapcrypt.imap.removers import Remover, remover_for, uses_gmail
from imapcrypt.imap.session import FolderStatus, MessageInfo, Session
from imapcrypt.imap.upload_budget import UploadBudget, daily_upload_limit
from imapcrypt.journal import Intent, Journal
from imapcrypt.keys.manage import encryption_key_ids
from imapcrypt.message import envelope
from imapcrypt.openpgp import gnupg as openpgp
from imapcrypt.openpgp.gnupg import GnuPG

log = logging.getLogger(__name__)

# Bodies fetched and held at once: bounds memory whatever the mailbox holds. Encryption runs one group
# ahead of storing, so two groups (each at most half of this) are in memory at a time.
MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024
GROUP_BYTES = MAX_BYTES_IN_FLIGHT // 2
VERIFY_FIELDS = (envelope.MARKER_HEADER, "Content-Type")
_header_parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)


@dataclass
class FolderReport:
    """What one pass over a folder did (counts only: no subjects, no addresses)."""

    folder: str
    candidates: int = 0
    encrypted: int = 0
    restored: int = 0
    already_ours: int = 0
    sender_encrypted: int = 0
    too_young: int = 0
    marked_deleted: int = 0
    waiting: int = 0
    failed: int = 0
    recovered: int = 0
    would_encrypt: int = 0
    too_large: int = 0  # copies over the server's APPENDLIMIT: skipped, reported, never half-processed
    # Copies stored but not proven on the server even after NOOPs: originals kept, intents left for
    # the next run. A failure for the exit code, `status` and the tray, not "nothing to do".
    unverified: int = 0


class ServerAltersMessages(ServerError):
    """The server changes messages as it stores them, so no copy can ever be proven: nothing is
    deleted there, ever (docs/providers.md#servers-that-change-stored-mail)."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"{host} changes the messages it stores (an mbox server adding its own headers), so no "
            "encrypted copy can be verified; the mail stays as plaintext",
            "use a server that stores messages as sent (Maildir or a database); see docs/providers.md",
        )


def unverified_note(report: FolderReport) -> str | None:
    """The journal's last error for a run that left copies unverified (shown by `status`), or None."""
    if not report.unverified:
        return None
    return (
        f"{report.unverified} copies could not be verified on the server; "
        "their originals are kept and the next run checks again"
    )


@dataclass(frozen=True)
class _Prepared:
    """A copy ready to be stored in place of the original `info`."""

    info: MessageInfo
    copy: bytes
    seal_id: str
    flags: tuple[bytes, ...]
    when: dt.datetime


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _by_bytes(infos: Sequence[MessageInfo], limit: int) -> Iterator[list[MessageInfo]]:
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


def _header(headers: bytes, name: str) -> str | None:
    value = _header_parser.parsebytes(headers).get(name)
    return None if value is None else str(value)


def _armored(encrypted: bytes) -> bytes:
    """The armored OpenPGP part of one of our copies (the PKESK packets sit at its start)."""
    start = encrypted.find(b"-----BEGIN PGP MESSAGE-----")
    return encrypted[start : start + 65536] if start >= 0 else b""


def _is_encrypted_copy(headers: bytes) -> bool:
    content_type = _header_parser.parsebytes(headers).get_content_type()
    return content_type == "multipart/encrypted"


def seal_for(account: Account, gpg: GnuPG, id_secret: bytes, raw: bytes, *, gmail: bool) -> envelope.Sealed:
    """The encrypted copy of `raw` exactly as the engine stores it for `account` (its recipients and
    outer headers; on Gmail a fresh outer Message-ID). Also what `imapcrypt serve` stores for an APPEND."""
    return envelope.seal(
        raw,
        gpg,
        account.recipients,
        id_secret,
        outer_headers=account.outer_headers,
        replace_message_id=gmail,
    )


@dataclass(frozen=True)
class _Sealing:
    """A group whose bodies are being sealed on the worker pool."""

    group: list[MessageInfo]
    present: list[MessageInfo]
    futures: list[Future[envelope.Sealed | ImapcryptError | None]]


class _Watermark:
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


class Engine:
    """Works on one account through one logged-in session. Not thread-safe: one engine per thread."""

    def __init__(
        self,
        account: Account,
        session: Session,
        gpg: GnuPG,
        journal: Journal,
        id_secret: bytes,
        *,
        events: EngineEvents | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.session = session
        self.gpg = gpg
        self.journal = journal
        self.id_secret = id_secret
        self.events: EngineEvents = events or NoEvents()
        self.clock = clock
        self.gmail = uses_gmail(session, account.profile)
        self.remover: Remover = remover_for(session, account.original, account.profile, journal)
        self.uploads = UploadBudget(journal, daily_upload_limit(account, self.gmail), clock)
        # Set from another thread to stop after the batch in flight (a clean shutdown).
        self.stopping = threading.Event()
        # Per folder: encryptions interrupted before a UIDVALIDITY change, by copy id (open_folder).
        self._orphans: dict[str, dict[str, Intent]] = {}
        workers = account.workers or min(os.cpu_count() or 1, 4)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imapcrypt-seal")

    def close(self) -> None:
        """Stop the worker pool (the session and journal belong to the caller)."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening a folder and recovering ------------------------------------------------------------
    def open_folder(self, folder: str) -> tuple[FolderStatus, int]:
        """Select `folder`, check UIDVALIDITY against the journal and resolve unfinished intents.

        Returns the folder's status and how many intents were resolved.
        """
        if not self.session.folder_exists(folder):
            raise ServerError(f"folder {folder!r} does not exist on {self.account.host}", "check `folders`")
        status = self.session.select(folder)
        stale = [i for i in self.journal.pending(folder) if i.uidvalidity != status.uidvalidity]
        if self.journal.set_uidvalidity(folder, status.uidvalidity):
            log.warning("folder %s: UIDVALIDITY changed; rescanning from the start", folder)
            # Their UIDs mean nothing now, but a copy still names its original by id: the rescan
            # finishes such an original instead of storing a second copy (_stored_before).
            self._orphans[folder] = {i.seal_id: i for i in stale if i.direction == "encrypt"}
        recovered = self._recover(self.journal.pending(folder))
        return status, recovered

    def _recover(self, intents: list[Intent]) -> int:
        """Resolve unfinished intents: finish those whose copy is on the server, drop the others.

        The originals of all finished ones are removed together: a server that can only expunge a
        whole folder must not see our own half-deleted originals as someone else's.
        """
        finished: list[tuple[Intent, int]] = []
        for intent in intents:
            copies = self._find_copies(intent)
            altered = [] if copies else self._altered_copies(intent)
            if altered:
                # A copy the server changed never proves itself: it goes, the original stays.
                self._drop_altered(intent.folder, {intent.src_uid: altered})
            if not copies:
                # Never deleted before a verified copy existed: the original is still there.
                log.info(
                    "folder %s: uid %d had no copy yet; it will be redone", intent.folder, intent.src_uid
                )
                self.journal.abandon([intent])
                continue
            if len(copies) > 1 and self.session.can_expunge_uid:
                # Through the remover: on Gmail a bare expunge would only archive the duplicate.
                self.remover.remove(self.session, intent.folder, copies[1:])
            finished.append((intent, copies[0]))
        if not finished:
            return len(intents)
        folder = finished[0][0].folder
        adopted = self.remover.adopt(self.session, folder, {i.src_uid: c for i, c in finished})
        finished = [(intent, copy) for intent, copy in finished if intent.src_uid in adopted]
        present = self.session.fetch_info([intent.src_uid for intent, _ in finished], ["Message-ID"])
        if present:
            self.remover.remove(self.session, folder, sorted(present))
        self.journal.complete([intent for intent, _ in finished])
        for intent, copy_uid in finished:
            log.info("folder %s: finished uid %d after an interruption", folder, intent.src_uid)
            self._done(folder, intent.direction, intent.src_uid, copy_uid, intent.size)
        return len(intents)

    def _find_copies(self, intent: Intent) -> list[int]:
        """Verified copies of an intent's message on the server, lowest UID first."""
        if intent.direction == "encrypt":
            candidates = self.session.search_header(envelope.MARKER_HEADER, intent.seal_id)
            infos = self.session.fetch_info(candidates, VERIFY_FIELDS)
            return [
                uid
                for uid, info in sorted(infos.items())
                if uid != intent.src_uid and self._is_copy(info, intent.seal_id, intent.size)
            ]
        candidates = self.session.uids_above(intent.uidnext - 1)
        infos = self.session.fetch_info(candidates, ["Message-ID"])
        sized = [uid for uid, info in sorted(infos.items()) if info.size == intent.size]
        bodies = self.session.fetch_bodies(sized)
        return [
            uid
            for uid in sized
            if envelope.message_id(bodies.get(uid, b""), self.id_secret) == intent.seal_id
        ]

    @staticmethod
    def _is_copy(info: MessageInfo, seal_id: str, size: int) -> bool:
        marker = _header(info.headers, envelope.MARKER_HEADER)
        return (
            info.size == size
            and marker is not None
            and envelope.marker_id(marker) == seal_id
            and _is_encrypted_copy(info.headers)
        )

    # -- encrypting -----------------------------------------------------------------------------------
    def encrypt_folder(self, folder: str, backlog: bool = False, dry_run: bool = False) -> FolderReport:
        """Encrypt the folder's new mail (or, for `backlog`, all of it). A dry run only counts.

        GnuPG seals one group of messages while the previous group is stored, verified and deleted,
        so the server's round trips and the encryption overlap.
        """
        report = FolderReport(folder)
        try:
            status, report.recovered = self.open_folder(folder)
            start = 0 if backlog else self.journal.folder(folder).watermark
            uids = self.session.uids_above(start)
            report.candidates = len(uids)
            meter = RateMeter(self.account.name, folder, len(uids))
            handled: set[int] = set()
            mark = _Watermark(self.journal, folder, uids, enabled=not dry_run)
            sealing: _Sealing | None = None
            for batch in _chunks(uids, self.account.batch_size):
                if self.stopping.is_set():
                    break
                done, groups = self._classify_batch(status, batch, report, dry_run)
                handled |= done
                for group in groups:
                    started = self._start_sealing(group)
                    if sealing is not None:
                        handled |= self._finish_sealing(status, sealing, report)
                    sealing = started
                mark.advance(handled)
                self.events.on_progress(meter.advance(len(batch)))
            if sealing is not None:
                handled |= self._finish_sealing(status, sealing, report)
                mark.advance(handled)
        except ImapcryptError as exc:
            if not dry_run:
                self.journal.note_run(folder, report.waiting, str(exc))
            raise
        if not dry_run:
            waiting = report.waiting + report.too_young + report.failed + report.unverified
            self.journal.note_run(folder, waiting, unverified_note(report))
        return report

    def _classify_batch(
        self, status: FolderStatus, batch: Sequence[int], report: FolderReport, dry_run: bool
    ) -> tuple[set[int], list[list[MessageInfo]]]:
        """Sort one batch of UIDs out from their headers: the UIDs that need no more work, and the
        messages to encrypt in groups of at most GROUP_BYTES."""
        infos = self.session.fetch_info(batch, envelope.CLASSIFY_HEADERS)
        handled = {uid for uid in batch if uid not in infos}  # expunged meanwhile
        youngest = self.clock() - self.account.grace_minutes * 60
        todo: list[MessageInfo] = []
        for uid in batch:
            info = infos.get(uid)
            if info is None:
                continue
            kind = envelope.classify(info.headers)
            if kind is envelope.Kind.OURS:
                report.already_ours += 1
                handled.add(uid)
            elif b"\\Deleted" in info.flags:
                # On its way out: a copy would carry \Deleted too, and expunging it is the user's call.
                report.marked_deleted += 1
                handled.add(uid)
            elif info.internaldate.timestamp() > youngest:
                report.too_young += 1
            else:
                todo.append(info)
        if dry_run:
            report.would_encrypt += len(todo)
            return handled, []
        if todo:
            refusal = self.remover.refusal(self.session, status.name, [i.uid for i in todo])
            if refusal:
                report.waiting += len(todo)
                self.events.on_error(ServerError(f"not encrypting now: {refusal}", "it will be retried"))
                return handled, []
        return handled, list(_by_bytes(todo, GROUP_BYTES))

    def _start_sealing(self, group: list[MessageInfo]) -> _Sealing:
        """Fetch a group's bodies and hand them to the worker pool; returns at once."""
        bodies = self.session.fetch_bodies([i.uid for i in group])
        present = [info for info in group if info.uid in bodies]
        futures = [self._pool.submit(self._seal, info, bodies.pop(info.uid)) for info in present]
        return _Sealing(group, present, futures)

    def _finish_sealing(self, status: FolderStatus, sealing: _Sealing, report: FolderReport) -> set[int]:
        """Wait for a group's sealed copies and store them; the UIDs that need no more work."""
        present_uids = {info.uid for info in sealing.present}
        handled = {info.uid for info in sealing.group if info.uid not in present_uids}  # expunged meanwhile
        prepared: list[_Prepared] = []
        limit = self.session.append_limit
        for info, future in zip(sealing.present, sealing.futures, strict=True):
            result = future.result()
            if isinstance(result, envelope.Sealed) and limit is not None and len(result.message) > limit:
                # Skipped whole, before any intent: the original stays as it is, and says why.
                report.too_large += 1
                handled.add(info.uid)
                self.events.on_error(
                    ServerError(
                        f"uid {info.uid} in {status.name} not encrypted: its encrypted copy "
                        f"({len(result.message):,} bytes) exceeds the server's limit of {limit:,} bytes",
                        "it stays as plaintext",
                    )
                )
            elif isinstance(result, envelope.Sealed) and self._stored_before(status.name, info, result.id):
                report.recovered += 1
                handled.add(info.uid)
            elif isinstance(result, envelope.Sealed):
                prepared.append(_Prepared(info, result.message, result.id, info.flags, info.internaldate))
            elif result is None:
                report.sender_encrypted += 1
                handled.add(info.uid)
            else:
                report.failed += 1
                self.events.on_error(result)
        stored = self._store(status, prepared, "encrypt", report)
        report.encrypted += len(stored)
        return handled | stored

    def _seal(
        self, info: MessageInfo, raw: bytes, *, again: bool = False
    ) -> envelope.Sealed | ImapcryptError | None:
        """Runs on the worker pool: seal one message; None when its body proves it is encrypted already.

        `again` (re-encryption) seals sender-encrypted mail too: it was sealed once, under a policy
        that wrapped it. Never raises: a failure comes back as the error, for the caller to report.
        """
        try:
            # Sender encryption counts only when the whole message proves it (docs/format.md).
            kind = envelope.classify(raw)
            wrap = again or self.account.encrypt_encrypted
            if kind is envelope.Kind.OURS or (kind is not envelope.Kind.PLAINTEXT and not wrap):
                return None
            return seal_for(self.account, self.gpg, self.id_secret, raw, gmail=self.gmail)
        except ImapcryptError as exc:
            log.error("uid %d not encrypted: %s", info.uid, exc)
            return exc

    # -- storing copies and deleting originals (shared by both directions) ----------------------------
    def _store(
        self, status: FolderStatus, prepared: list[_Prepared], direction: Direction, report: FolderReport
    ) -> set[int]:
        """Append, verify and swap each prepared copy for its original; the UIDs finished."""
        if not prepared:
            return set()
        allowed = self.uploads.fitting([len(p.copy) for p in prepared])
        if allowed < len(prepared):
            # The day's upload budget: store what fits, then pause the whole run until tomorrow.
            self._store(status, prepared[:allowed], direction, report)
            raise self.uploads.paused()
        intents = {
            p.info.uid: Intent(
                status.name, status.uidvalidity, p.info.uid, direction, p.seal_id, len(p.copy), status.uidnext
            )
            for p in prepared
        }
        self.journal.begin(list(intents.values()))
        new_uids = self._append(status.name, prepared, intents)
        verified = self._verify(prepared, intents, new_uids, direction)
        unproven = [
            intents[p.info.uid] for p in prepared if p.info.uid in new_uids and p.info.uid not in verified
        ]
        if verified:
            adopted = self.remover.adopt(self.session, status.name, verified)
            for src in set(verified) - set(adopted):
                self.events.on_error(ServerError(f"the copy of uid {src} was merged into it; it is kept"))
            verified = adopted
        if verified:
            self.remover.remove(self.session, status.name, sorted(verified))
            self.journal.complete([intents[src] for src in verified])
        for src, copy_uid in verified.items():
            self._done(status.name, direction, src, copy_uid, intents[src].size)
        if unproven:  # after the proven ones are done: this may stop the run
            self._unproven(status.name, unproven, report)
        return set(verified)

    def _append(
        self, folder: str, prepared: list[_Prepared], intents: dict[int, Intent]
    ) -> dict[int, int | None]:
        """Store the copies. Maps each stored original's UID to its copy's UID (None: server did not say).

        A copy the server refuses outright (too large, malformed) is reported and its intent dropped;
        a full mailbox stops the run; a lost connection leaves the intents for recovery.
        """
        if len(prepared) > 1 and self.session.can_multiappend:
            try:
                uids = self.session.append_many(folder, [(p.copy, p.flags, p.when) for p in prepared])
            except QuotaError:
                self.journal.abandon(list(intents.values()))
                raise
            except TransientError:
                raise
            except ServerError:
                pass  # all or none were stored (RFC 3502): try one by one to isolate the refusal
            else:
                self.uploads.add(sum(len(p.copy) for p in prepared))
                if uids is None:
                    return {p.info.uid: None for p in prepared}
                return dict(zip((p.info.uid for p in prepared), uids, strict=True))
        new: dict[int, int | None] = {}
        for index, p in enumerate(prepared):
            try:
                new[p.info.uid] = self.session.append(folder, p.copy, p.flags, p.when)
                self.uploads.add(len(p.copy))
            except QuotaError:
                self.journal.abandon([intents[later.info.uid] for later in prepared[index:]])
                raise
            except TransientError:
                raise
            except ServerError as exc:
                self.journal.abandon([intents[p.info.uid]])
                self.events.on_error(exc)
        return new

    def _verify(
        self,
        prepared: list[_Prepared],
        intents: dict[int, Intent],
        new_uids: dict[int, int | None],
        direction: Direction,
    ) -> dict[int, int]:
        """Map original UID -> copy UID for every copy proven to be on the server as sent.

        One FETCH checks all copies the server named (UID, size, our id, multipart/encrypted); a copy
        whose UID the server did not say is looked for as recovery would. Restores, and every copy
        under verify = "hash", are also compared byte for byte.
        """
        claimed: dict[int, int] = {}
        if any(new_uids.get(p.info.uid, 0) is None for p in prepared):
            self.session.settle()  # a server may show this session its own APPEND only after a NOOP
        for p in prepared:
            if p.info.uid not in new_uids:
                continue
            uid = new_uids[p.info.uid]
            if uid is None:
                found = self._find_copies(intents[p.info.uid])
                uid = found[0] if found else None
            if uid is not None and uid != p.info.uid:
                claimed[p.info.uid] = uid
        # Not seen at once is not missing yet: some servers show an APPEND late (Courier, until NOOP).
        infos = self.session.fetch_info_settled(sorted(claimed.values()), VERIFY_FIELDS)
        verified: dict[int, int] = {}
        for p in prepared:
            uid = claimed.get(p.info.uid)
            info = infos.get(uid) if uid is not None else None
            if uid is None or info is None or info.size != len(p.copy):
                continue
            if direction == "encrypt" and not self._is_copy(info, p.seal_id, len(p.copy)):
                continue
            verified[p.info.uid] = uid
        if direction == "restore" or self.account.verify == "hash":
            stored = self.session.fetch_bodies(sorted(verified.values()))
            copies = {p.info.uid: p.copy for p in prepared}
            verified = {src: uid for src, uid in verified.items() if stored.get(uid) == copies[src]}
        return verified

    def _unproven(self, folder: str, intents: list[Intent], report: FolderReport) -> None:
        """Deal with copies stored but not proven: report each; drop those the server changed.

        A copy that is not visible (yet) keeps its intent: the original stays and the next run's
        recovery looks for the copy again. A copy the server changed while storing it (an mbox server
        adding X-UID and Status headers) can never be proven byte for byte: it is removed again, the
        original stays as plaintext, and the folder's run stops with the reason, since every other
        copy would meet the same fate.
        """
        altered = {intent.src_uid: self._altered_copies(intent) for intent in intents}
        for intent in intents:
            if not altered[intent.src_uid]:
                report.unverified += 1
                self.events.on_error(
                    ServerError(
                        f"the copy of uid {intent.src_uid} in {folder} could not be verified",
                        "the original is kept; the next run looks for the copy again",
                    )
                )
        changed = [intent for intent in intents if altered[intent.src_uid]]
        if changed:
            self._drop_altered(folder, {i.src_uid: altered[i.src_uid] for i in changed})
            self.journal.abandon(changed)
            report.failed += len(changed)
            raise ServerAltersMessages(self.account.host)

    def _altered_copies(self, intent: Intent) -> list[int]:
        """Our copies of an intent's message that the server stored changed (our id, another size).

        Only encrypted copies carry an id that survives a change; a changed restore cannot be found.
        """
        if intent.direction != "encrypt":
            return []
        candidates = self.session.search_header(envelope.MARKER_HEADER, intent.seal_id)
        infos = self.session.fetch_info(candidates, VERIFY_FIELDS)
        return [
            uid
            for uid, info in sorted(infos.items())
            if uid != intent.src_uid
            and not self._is_copy(info, intent.seal_id, intent.size)
            and self._is_copy(info, intent.seal_id, info.size)
        ]

    def _drop_altered(self, folder: str, altered: dict[int, list[int]]) -> None:
        """Remove changed copies whose original is still in the folder (never the only instance)."""
        present = self.session.fetch_info(sorted(altered), ["Message-ID"])
        doomed = sorted(uid for src, uids in altered.items() if src in present for uid in uids)
        if doomed:
            log.warning("folder %s: removing %d copies the server changed", folder, len(doomed))
            self.remover.remove(self.session, folder, doomed)

    def _stored_before(self, folder: str, info: MessageInfo, seal_id: str) -> bool:
        """Finish `info`'s encryption from before a UIDVALIDITY change, if its copy is there.

        The copy is proven as recovery proves one (our id, encrypted, the size it was stored with);
        then the original is removed and True returned. False: store a copy as usual.
        """
        orphan = self._orphans.get(folder, {}).pop(seal_id, None)
        if orphan is None:
            return False
        copies = self._find_copies(dataclasses.replace(orphan, src_uid=info.uid))
        if not copies:
            return False
        if len(copies) > 1 and self.session.can_expunge_uid:
            self.remover.remove(self.session, folder, copies[1:])
        if info.uid not in self.remover.adopt(self.session, folder, {info.uid: copies[0]}):
            return False
        self.remover.remove(self.session, folder, [info.uid])
        log.info("folder %s: finished uid %d, stored before a UIDVALIDITY change", folder, info.uid)
        self._done(folder, "encrypt", info.uid, copies[0], orphan.size)
        return True

    def _done(self, folder: str, direction: Direction, src: int, new: int, size: int) -> None:
        self.events.on_message_done(MessageDone(self.account.name, folder, direction, src, new, size))

    # -- restoring and re-encrypting -------------------------------------------------------------------
    def restore_folder(self, folder: str, passphrase: str | None = None) -> FolderReport:
        """Replace every encrypted copy in `folder` by its original bytes, flags and INTERNALDATE.

        Afterwards the watermark sits above the restored mail, so `run` does not encrypt it again
        (`backlog` would).
        """
        report = self._rewrite_folder(folder, passphrase, reencrypt=False)
        self.journal.advance_watermark(folder, self.session.select(folder).uidnext - 1)
        return report

    def reencrypt_folder(self, folder: str, passphrase: str | None = None) -> FolderReport:
        """Seal every encrypted copy that is not addressed to exactly the current recipients afresh.

        After `keys rotate` old mail is still sealed to the old key: each such copy is opened (which
        needs the old secret key) and replaced by one sealed to the current recipients, under the same
        protocol as encryption (journal, append, verify, delete the old copy).
        """
        return self._rewrite_folder(folder, passphrase, reencrypt=True)

    def _rewrite_folder(self, folder: str, passphrase: str | None, reencrypt: bool) -> FolderReport:
        report = FolderReport(folder)
        status, report.recovered = self.open_folder(folder)
        current = encryption_key_ids(self.gpg, self.account.recipients) if reencrypt else frozenset()
        uids = self.session.uids_above(0)
        meter = RateMeter(self.account.name, folder, len(uids))
        for batch in _chunks(uids, self.account.batch_size):
            if self.stopping.is_set():
                break
            infos = self.session.fetch_info(batch, envelope.CLASSIFY_HEADERS)
            ours = [i for i in infos.values() if envelope.classify(i.headers) is envelope.Kind.OURS]
            report.candidates += len(ours)
            if ours:
                refusal = self.remover.refusal(self.session, folder, [i.uid for i in ours])
                if refusal:
                    raise ServerError(f"not rewriting encrypted mail now: {refusal}", "try again later")
            for group in _by_bytes(ours, GROUP_BYTES):
                done = self._rewrite_group(status, group, passphrase, current, report)
                if reencrypt:
                    report.encrypted += done
                else:
                    report.restored += done
            self.events.on_progress(meter.advance(len(batch)))
        self.journal.note_run(folder, report.failed + report.unverified, unverified_note(report))
        return report

    def _rewrite_group(
        self,
        status: FolderStatus,
        group: list[MessageInfo],
        passphrase: str | None,
        current: frozenset[str],
        report: FolderReport,
    ) -> int:
        """Restore (no `current` key IDs) or re-seal (copies not sealed to exactly `current`) a group."""
        bodies = self.session.fetch_bodies([i.uid for i in group])
        present = [info for info in group if info.uid in bodies]
        if current:
            present = [
                info for info in present if openpgp.session_key_ids(_armored(bodies[info.uid])) != current
            ]
            report.already_ours += len(group) - len(present)

        def rewrite(info: MessageInfo) -> _Prepared | ImapcryptError:
            try:
                original = envelope.restore(
                    bodies[info.uid], self.gpg, passphrase, max_bytes=self.account.max_message_bytes
                )
            except EnvelopeError as exc:
                # The same type (a wrong passphrase stays a DecryptError), now naming the message.
                return type(exc)(f"uid {info.uid} in {status.name} skipped: {exc.message}", exc.fix)
            except Exception as exc:  # one hostile copy must not abort the folder (docs/engine.md)
                return EnvelopeError(
                    f"uid {info.uid} in {status.name} skipped: it could not be decrypted "
                    f"({type(exc).__name__})",
                    "it stays encrypted as it is",
                )
            if not current:
                seal_id = envelope.message_id(original, self.id_secret)
                return _Prepared(info, original, seal_id, info.flags, info.internaldate)
            sealed = self._seal(info, original, again=True)
            if not isinstance(sealed, envelope.Sealed):
                return sealed or EnvelopeError(f"uid {info.uid} no longer opens as a plain message")
            return _Prepared(info, sealed.message, sealed.id, info.flags, info.internaldate)

        prepared: list[_Prepared] = []
        for result in self._pool.map(rewrite, present):
            if isinstance(result, ImapcryptError):
                report.failed += 1
                self.events.on_error(result)
            else:
                prepared.append(result)
        return len(self._store(status, prepared, "encrypt" if current else "restore", report))
