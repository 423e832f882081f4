"""The engine's protocol (docs/engine.md): replace a folder's plaintext messages by encrypted copies.

For every message: journal the intent (with the digest of the copy), APPEND the copy with the
original's flags and INTERNALDATE, verify that the server gives back exactly the bytes sent, delete the
original, journal the completion. A crash at any point leaves an intent that the next run resolves
first (a copy whose bytes match the digest: finish the delete; none: remove what does not match and
redo), so every original exists exactly once afterwards, as itself or as its copy. A message whose
copies keep failing verification is parked after MAX_VERIFY_FAILURES tries, never appended again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from imapcrypt.config.model import Account
from imapcrypt.engine.batches import GROUP_BYTES, Prepared, Sealing, Watermark, by_bytes, chunks
from imapcrypt.engine.copies import CopyFinder
from imapcrypt.engine.report import FolderReport, ServerAltersMessages, unverified_note
from imapcrypt.engine.rewrite import rewrite_folder
from imapcrypt.errors import (
    ImapcryptError,
    QuotaError,
    ServerError,
    TransientError,
    VerificationError,
)
from imapcrypt.events import Direction, EngineEvents, MessageDone, NoEvents, RateMeter
from imapcrypt.imap.claims import Claims, without_claims
from imapcrypt.imap.profile import server_profile
from imapcrypt.imap.removers import Remover, remover_for
from imapcrypt.imap.session import FolderStatus, MessageInfo, Session
from imapcrypt.imap.upload_budget import UploadBudget, daily_upload_limit
from imapcrypt.journal import Intent, Journal
from imapcrypt.message import copy, envelope
from imapcrypt.openpgp.gnupg import GnuPG

log = logging.getLogger(__name__)

# Copies of one message that may fail verification (each removed again) before it is parked.
MAX_VERIFY_FAILURES = 3
_PARKED_FIX = (
    "it stays as it is; see `imapcrypt status`, and once the server is fixed run "
    "`imapcrypt backlog --retry-parked`"
)


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
        claim_keyword: bytes | None = None,
    ) -> None:
        self.account = account
        self.session = session
        self.gpg = gpg
        self.journal = journal
        self.id_secret = id_secret
        self.events: EngineEvents = events or NoEvents()
        self.clock = clock
        self.server = server_profile(session, account.profile)  # decided once, for every part below
        self.remover: Remover = remover_for(session, account.original, self.server, journal)
        self.uploads = UploadBudget(journal, daily_upload_limit(account, self.server.gmail), clock)
        self._unvouched: dict[str, list[int]] = {}  # see open_folder
        self._listing_unvouched = False
        # Per folder: encryptions interrupted before a UIDVALIDITY change, by copy id (open_folder).
        self._orphans: dict[str, dict[str, Intent]] = {}
        # Coordination with other installations on this mailbox (off without a keyword).
        self.claims = Claims(session, claim_keyword, account.claim_lease_minutes * 60)
        self.copies = CopyFinder(session, id_secret)  # our copies on the server, proven by their bytes
        # Set from another thread to stop after the batch in flight (a clean shutdown).
        self.stopping = threading.Event()
        workers = account.workers or min(os.cpu_count() or 1, 4)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imapcrypt-seal")

    def close(self) -> None:
        """Stop the worker pool (the session and journal belong to the caller)."""
        self.pool.shutdown(wait=True)

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
        known = self.journal.folder(folder).uidvalidity == status.uidvalidity
        stale = [i for i in self.journal.pending(folder) if i.uidvalidity != status.uidvalidity]
        if self.journal.set_uidvalidity(folder, status.uidvalidity):
            log.warning("folder %s: UIDVALIDITY changed; rescanning from the start", folder)
            # Their UIDs mean nothing now, but a copy still names its original by id: the rescan
            # finishes such an original instead of storing a second copy (_stored_before).
            self._orphans[folder] = {i.seal_id: i for i in stale if i.direction == "encrypt"}
        # A journal that never saw this folder (a new or replaced journal, a new UIDVALIDITY) cannot
        # vouch for the copies already there: they are listed before the first copy is stored, so none
        # is taken for granted or doubled. A journal that knows the folder holds an intent for every
        # copy in flight instead.
        self._unvouched = {}
        self._listing_unvouched = not known
        self.claims.decide(folder, self.session.permanent_flags)
        recovered = self._recover(self.journal.pending(folder))
        self.claims.release_leftovers(folder)
        return status, recovered

    def _drop_unvouched(self, folder: str, prepared: list[Prepared]) -> None:
        """Remove the copies no journal vouches for of the messages about to be encrypted again.

        Such a copy was made under a journal that is gone, so it cannot be verified; its original is
        still here (its bytes were just read), so removing the copy costs nothing, and keeping it
        would leave the message twice once the new copy is stored.
        """
        doomed = sorted(uid for p in prepared for uid in self._unvouched.pop(p.seal_id, []))
        if doomed:
            log.warning("folder %s: removing %d copy(ies) no journal vouches for", folder, len(doomed))
            self._discard(folder, doomed, {p.info.uid for p in prepared})

    def _recover(self, intents: list[Intent]) -> int:
        """Resolve unfinished intents: finish those whose copy is on the server exactly as it was sent,
        drop the others (removing any copy that does not match, while its original is still there).
        A copy whose original someone else removed goes too (`_removed_elsewhere`).

        The originals of all finished ones are removed together: a server that can only expunge a
        whole folder must not see our own half-deleted originals as someone else's.
        """
        if not intents:
            return 0
        folder = intents[0].folder
        originals = set(self.session.fetch_info([i.src_uid for i in intents], ["Message-ID"]))
        finished: list[tuple[Intent, int]] = []
        rejected: dict[Intent, tuple[list[int], str]] = {}
        elsewhere: dict[Intent, list[int]] = {}
        for intent in intents:
            good, bad = self.copies.find(intent)
            # Gone before this installation began to remove it: someone else did. Only for encryption:
            # a restore's copy is the plaintext, byte for byte what another installation's restore of
            # the same message stores, so "ours" could be theirs; it keeps the rule below.
            if (
                good
                and intent.src_uid not in originals
                and intent.direction == "encrypt"
                and not intent.deleting
            ):
                elsewhere[intent] = good
            elif good:
                if len(good) > 1 and self.session.can_expunge_uid:
                    # Through the remover: on Gmail a bare expunge would only archive the duplicate.
                    self.remover.remove(self.session, folder, good[1:])
                self._discard(folder, bad, originals)  # nothing when there is none
                finished.append((intent, good[0]))
            elif intent.src_uid in originals and bad:
                rejected[intent] = (bad, "the copy on the server is not the one that was sent")
            elif intent.src_uid in originals:
                # Never deleted before a verified copy existed: the original is still there.
                log.info("folder %s: uid %d had no copy yet; it will be redone", folder, intent.src_uid)
                self.journal.abandon([intent])
            else:
                # The original is gone and nothing matches what was sent: what is there is all there
                # is, so it stays (never delete the last instance of a message).
                if bad:
                    self.events.on_error(
                        VerificationError(
                            f"uid {intent.src_uid} in {folder}: the original is gone and its copy does not "
                            "match what was sent; the copy is kept",
                            "check that it opens with `imapcrypt restore`",
                        )
                    )
                self.journal.abandon([intent])
        self._reject(folder, rejected, originals)
        self._removed_elsewhere(folder, elsewhere)
        finished = self._still_claimed(folder, finished)
        if finished:
            adopted = self.remover.adopt(self.session, folder, {i.src_uid: c for i, c in finished})
            finished = [(intent, copy_uid) for intent, copy_uid in finished if intent.src_uid in adopted]
            present = sorted(originals & {intent.src_uid for intent, _ in finished})
            if present:
                self.journal.mark_deleting([intent for intent, _ in finished if intent.src_uid in originals])
                self.remover.remove(self.session, folder, present)
            self.journal.complete([intent for intent, _ in finished])
        for intent, copy_uid in finished:
            log.info("folder %s: finished uid %d after an interruption", folder, intent.src_uid)
            self._done(folder, intent.direction, intent.src_uid, copy_uid, intent.size)
        return len(intents)

    def _removed_elsewhere(self, folder: str, copies: dict[Intent, list[int]]) -> None:
        """Recovery: originals gone whose intents are not deleting were removed by someone else while
        we were down (another installation that took the message over once our claim's lease ran out
        and stored its own copy, or the user): our copies of them go too, and the intents are dropped.

        Safe because this installation marks an intent deleting before it removes any original
        (`Journal.mark_deleting`), so none of these is the last instance of its message. The copies
        match the bytes we sent (a fresh outer Message-ID on Gmail), so none is an original Gmail
        merged a copy into. A copy that cannot be removed now keeps its intent for the next run.
        """
        if not copies:
            return
        log.info("folder %s: %d original(s) were removed elsewhere; removing our copies", folder, len(copies))
        try:
            self.remover.remove(self.session, folder, sorted(uid for uids in copies.values() for uid in uids))
        except TransientError:
            raise
        except ServerError as exc:
            self.events.on_error(
                ServerError(
                    f"{len(copies)} copy(ies) in {folder} whose originals were removed elsewhere could not "
                    f"be removed: {exc.message}",
                    "the next run tries again",
                )
            )
            return
        self.journal.abandon(list(copies))

    def _still_claimed(self, folder: str, finished: list[tuple[Intent, int]]) -> list[tuple[Intent, int]]:
        """Claims hook of recovery: an original still present without our claim was taken over by
        another installation while we were down; our copy goes and the original is left to it.

        An original already gone (its intent deleting, see `_recover`) keeps our copy: we may have
        deleted it ourselves just before the crash, and a lost message is worse than a duplicate.
        """
        if self.claims.mode(folder).name == "NONE":
            return finished
        # A restore replaces our own copy, which no one claims (stop the daemons before restoring).
        claimed = [intent.src_uid for intent, _ in finished if intent.direction == "encrypt"]
        flags = self.claims.current_flags(claimed) if claimed else {}
        lost = [(i, c) for i, c in finished if i.src_uid in flags and not self.claims.holds(flags[i.src_uid])]
        if lost:
            log.info("folder %s: %d message(s) were taken over by another installation", folder, len(lost))
            self.remover.remove(self.session, folder, sorted(c for _, c in lost))
            self.journal.abandon([i for i, _ in lost])
        return [(i, c) for i, c in finished if (i, c) not in lost]

    def _reject(
        self, folder: str, rejected: dict[Intent, tuple[list[int], str]], originals: set[int]
    ) -> dict[int, bool]:
        """Copies that failed verification: remove them (the originals are still there), forget their
        intents and count the failure; at MAX_VERIFY_FAILURES a message is parked.

        Returns original UID -> whether it is now parked. Each one is reported as an error event.
        """
        bad = sorted(uid for uids, _ in rejected.values() for uid in uids)
        if bad:
            self._discard(folder, bad, originals)
        outcome: dict[int, bool] = {}
        for intent, (_, reason) in rejected.items():
            record = self.journal.reject(intent, reason, MAX_VERIFY_FAILURES)
            outcome[intent.src_uid] = record.parked
            what = "encrypted" if intent.direction == "encrypt" else "restored"
            if record.parked:
                error = VerificationError(
                    f"uid {intent.src_uid} in {folder} is parked, not {what}: {reason} "
                    f"({record.failures} copies failed verification)",
                    _PARKED_FIX,
                )
            else:
                error = VerificationError(
                    f"the copy of uid {intent.src_uid} in {folder} was not stored as sent: {reason}; "
                    f"it was removed (try {record.failures} of {MAX_VERIFY_FAILURES})",
                    "the original stays and is tried again on the next pass",
                )
            self.events.on_error(error)  # the daemon's events log it; a terminal shows it once
        return outcome

    def _discard(self, folder: str, copies: Sequence[int], originals: set[int]) -> None:
        """Remove copies that are not trusted, through the server's remover, never an original.

        On Gmail a copy merged into its original shares its X-GM-MSGID: removing it would remove the
        original too, so such a copy is left where it is.
        """
        doomed = [uid for uid in copies if uid not in originals]
        if doomed and self.server.gmail:
            ids = self.session.gmail_ids([*doomed, *sorted(originals)])
            kept = {ids[uid] for uid in originals if uid in ids}
            doomed = [uid for uid in doomed if ids.get(uid) not in kept]
        if not doomed:
            return
        try:
            self.remover.remove(self.session, folder, doomed)
        except TransientError:
            raise
        except ServerError as exc:
            self.events.on_error(
                ServerError(
                    f"{len(doomed)} untrusted copy(ies) in {folder} could not be removed: {exc.message}"
                )
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
            parked = self.journal.parked(folder, "encrypt")
            meter = RateMeter(self.account.name, folder, len(uids))
            handled: set[int] = set()
            mark = Watermark(self.journal, folder, uids, enabled=not dry_run)
            sealing: Sealing | None = None
            for batch in chunks(uids, self.account.batch_size):
                if self.stopping.is_set():
                    break
                done, groups = self._classify_batch(status, batch, report, dry_run, parked)
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
            waiting = report.waiting + report.too_young + report.failed + report.rejected + report.parked
            self.journal.note_run(folder, waiting + report.unverified, unverified_note(report))
        return report

    def _classify_batch(
        self,
        status: FolderStatus,
        batch: Sequence[int],
        report: FolderReport,
        dry_run: bool,
        parked: set[int],
    ) -> tuple[set[int], list[list[MessageInfo]]]:
        """Sort one batch of UIDs out from their headers: the UIDs that need no more work, and the
        messages to encrypt in groups of at most GROUP_BYTES. `parked` UIDs are left alone."""
        infos = self.session.fetch_info(batch, envelope.CLASSIFY_HEADERS)
        handled = {uid for uid in batch if uid not in infos}  # expunged meanwhile
        youngest = self.clock() - self.account.grace_minutes * 60
        todo: list[MessageInfo] = []
        for uid in batch:
            info = infos.get(uid)
            if info is None:
                continue
            if uid in parked:
                # Its copies kept failing verification: the journal holds why (`imapcrypt status`).
                report.parked += 1
                handled.add(uid)
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
            todo = self._claim(status.name, todo, report)
        return handled, list(by_bytes(todo, GROUP_BYTES))

    def _claim(self, folder: str, todo: list[MessageInfo], report: FolderReport) -> list[MessageInfo]:
        """Claims hook: keep the messages this installation now holds; the others wait (another
        installation is encrypting them; the watermark holds until they are gone)."""
        ours = self.claims.take(
            folder, {info.uid: info.flags for info in todo}, {info.uid: info.modseq for info in todo}
        )
        report.waiting += len(todo) - len(ours)
        return [info for info in todo if info.uid in ours]

    def _start_sealing(self, group: list[MessageInfo]) -> Sealing:
        """Fetch a group's bodies and hand them to the worker pool; returns at once."""
        bodies = self.session.fetch_bodies([i.uid for i in group])
        present = [info for info in group if info.uid in bodies]
        futures = [self.pool.submit(self.seal, info, bodies.pop(info.uid)) for info in present]
        return Sealing(group, present, futures)

    def _finish_sealing(self, status: FolderStatus, sealing: Sealing, report: FolderReport) -> set[int]:
        """Wait for a group's sealed copies and store them; the UIDs that need no more work."""
        present_uids = {info.uid for info in sealing.present}
        handled = {info.uid for info in sealing.group if info.uid not in present_uids}  # expunged meanwhile
        prepared: list[Prepared] = []
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
            elif isinstance(result, envelope.Sealed) and self._stored_before(status, info, result.id):
                report.recovered += 1
                handled.add(info.uid)
            elif isinstance(result, envelope.Sealed):
                flags = without_claims(info.flags)  # a copy never carries a claim
                prepared.append(Prepared(info, result.message, result.id, flags, info.internaldate))
            elif result is None:
                report.sender_encrypted += 1
                handled.add(info.uid)
            else:
                report.failed += 1
                self.events.on_error(result)
        if self._listing_unvouched and prepared:
            self._listing_unvouched = False
            self._unvouched = self.copies.on_server()
        if self._unvouched:
            self._drop_unvouched(status.name, prepared)
        try:
            stored, parked = self.store(status, prepared, "encrypt", report)
        except BaseException:
            # A full mailbox, a paused upload budget, a refusal: let the group go. A lost connection
            # cannot; the next start releases what is left (release_leftovers).
            with contextlib.suppress(TransientError):
                self._let_go(status.name, sealing.group, set())
            raise
        self._let_go(status.name, sealing.group, stored)
        report.encrypted += len(stored)
        return handled | stored | parked

    def _let_go(self, folder: str, group: list[MessageInfo], stored: set[int]) -> None:
        """Claims hook: release what this group did not finish (skipped, failed, refused); a message
        waiting for recovery under an intent keeps its claim, one stored is forgotten."""
        self.claims.forget(folder, stored)
        waiting = {i.src_uid for i in self.journal.pending(folder)}
        left = {info.uid for info in group} - stored - waiting
        self.claims.release(folder, self.claims.made(folder, left))

    def seal(
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
            return seal_for(self.account, self.gpg, self.id_secret, raw, gmail=self.server.gmail)
        except ImapcryptError as exc:
            log.error("uid %d not encrypted: %s", info.uid, exc)
            return exc

    # -- storing copies and deleting originals (shared by both directions) ----------------------------
    def store(
        self, status: FolderStatus, prepared: list[Prepared], direction: Direction, report: FolderReport
    ) -> tuple[set[int], set[int]]:
        """Append, verify and swap each prepared copy for its original.

        Returns the UIDs finished and the UIDs parked now (their copies failed verification once too
        often); a copy that failed verification is removed again and counted in `report.rejected`.
        """
        if not prepared:
            return set(), set()
        allowed = self.uploads.fitting([len(p.copy) for p in prepared])
        if allowed < len(prepared):
            # The day's upload budget: store what fits, then pause the whole run until tomorrow.
            self.store(status, prepared[:allowed], direction, report)
            raise self.uploads.paused()
        intents = {
            p.info.uid: Intent(
                status.name,
                status.uidvalidity,
                p.info.uid,
                direction,
                p.seal_id,
                len(p.copy),
                status.uidnext,
                copy.digest(p.copy, self.id_secret),
            )
            for p in prepared
        }
        self.journal.begin(list(intents.values()))
        new_uids = self._append(status.name, prepared, intents)
        verified, failed, unseen = self._verify(prepared, intents, new_uids, direction)
        originals = {p.info.uid for p in prepared}
        outcome = self._reject(status.name, {intents[src]: why for src, why in failed.items()}, originals)
        report.rejected += sum(1 for now_parked in outcome.values() if not now_parked)
        parked = {src for src, now_parked in outcome.items() if now_parked}
        report.parked += len(parked)
        for src in unseen:
            # The intent stays: the original is kept, and the next run's recovery looks again.
            report.unverified += 1
            self.events.on_error(
                ServerError(
                    f"the copy of uid {src} in {status.name} could not be verified",
                    "the original is kept; the next run looks for the copy again",
                )
            )
        verified = self._confirm_claims(status.name, verified, intents)
        if verified:
            adopted = self.remover.adopt(self.session, status.name, verified)
            for src in set(verified) - set(adopted):
                self.events.on_error(ServerError(f"the copy of uid {src} was merged into it; it is kept"))
            verified = adopted
        if verified:
            self.journal.mark_deleting([intents[src] for src in verified])
            self.remover.remove(self.session, status.name, sorted(verified))
            self.journal.complete([intents[src] for src in verified])
        for src, copy_uid in verified.items():
            self._done(status.name, direction, src, copy_uid, intents[src].size)
        if failed and not verified and any(bad for bad, _ in failed.values()):
            # Not one copy of the batch came back as sent: the server changes what it stores (an mbox
            # server adding its headers), and every other copy would meet the same fate. The bad
            # copies are gone, their failures counted (parking bounds the next runs), and the
            # folder's run stops with the reason.
            raise ServerAltersMessages(self.account.host)
        return set(verified), parked

    def _confirm_claims(
        self, folder: str, verified: dict[int, int], intents: dict[int, Intent]
    ) -> dict[int, int]:
        """Claims hook before deleting originals: one FETCH FLAGS re-checks that each is still ours.

        Taken over (our claim gone, or held too long) → our copy goes, the original stays for the
        other installation. Gone (the user or another installation removed it after we appended) →
        our copy goes too: keeping it would resurrect or duplicate the message.
        """
        mine = self.claims.made(folder, verified)
        if not mine:
            return verified
        _, lost, gone = self.claims.confirm(folder, sorted(mine))
        if lost or gone:
            log.info("folder %s: %d taken over, %d gone before we deleted them", folder, len(lost), len(gone))
            self.remover.remove(self.session, folder, sorted(verified[src] for src in lost | gone))
            self.journal.abandon([intents[src] for src in lost | gone])
            self.claims.release(folder, lost)
            self.claims.forget(folder, gone)
        return {src: uid for src, uid in verified.items() if src not in lost | gone}

    def _append(
        self, folder: str, prepared: list[Prepared], intents: dict[int, Intent]
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
        prepared: list[Prepared],
        intents: dict[int, Intent],
        new_uids: dict[int, int | None],
        direction: Direction,
    ) -> tuple[dict[int, int], dict[int, tuple[list[int], str]], list[int]]:
        """Which stored copies are on the server as sent: original UID -> copy UID for those;
        original UID -> (the untrusted copies' UIDs, why) for those the server changed; and the
        original UIDs whose copy the server does not show at all (even after NOOPs).

        A copy counts as stored only when the server gives back exactly the bytes sent (`verify =
        "bytes"`, the default, and always for a restore). Under the opt-in `verify = "size"` one FETCH
        checks UID, size, our id and `multipart/encrypted` instead ("hash" is an old name for "bytes").
        A copy whose UID the server did not say is looked for as recovery would, by its bytes. Not
        seen at once is not missing yet: some servers show an APPEND late (Courier, until a NOOP).
        """
        if any(new_uids.get(p.info.uid, 0) is None for p in prepared):
            self.session.settle()  # a server may show this session its own APPEND only after a NOOP
        claimed: dict[int, int] = {}
        unnamed: list[int] = []  # appended, but where the copy is the server did not (rightly) say
        for p in prepared:
            if p.info.uid not in new_uids:
                continue  # refused by the server: its intent is already dropped
            uid = new_uids[p.info.uid]
            if uid is not None and uid != p.info.uid:
                claimed[p.info.uid] = uid
            else:
                unnamed.append(p.info.uid)
        copies = {p.info.uid: p for p in prepared if p.info.uid in claimed}
        if direction == "restore" or self.account.verify != "size":
            verified, failed = self.copies.compare_bytes(copies, claimed, unnamed)
        else:
            verified, failed = self.copies.compare_sizes(copies, claimed, unnamed)
        unseen: list[int] = []
        for src in unnamed:
            good, bad = self.copies.find(intents[src])
            if good:
                verified[src] = good[0]
                bad += good[1:]
                if bad:
                    self._discard(intents[src].folder, bad, {p.info.uid for p in prepared})
            elif bad:
                failed[src] = (bad, "the server gave back other bytes than were sent")
            else:
                unseen.append(src)
        return verified, failed, unseen

    def _stored_before(self, status: FolderStatus, info: MessageInfo, seal_id: str) -> bool:
        """Finish `info`'s encryption from before a UIDVALIDITY change, if its copy is there.

        The copy is proven as recovery proves one (its bytes match the digest journalled when it was
        sent); then the original is removed under an intent journalled as deleting, and True returned.
        False: store a copy as usual.
        """
        folder = status.name
        orphan = self._orphans.get(folder, {}).pop(seal_id, None)
        if orphan is None:
            return False
        copies, _ = self.copies.find(dataclasses.replace(orphan, src_uid=info.uid))
        if not copies:
            return False
        if len(copies) > 1 and self.session.can_expunge_uid:
            self.remover.remove(self.session, folder, copies[1:])
        if info.uid not in self.remover.adopt(self.session, folder, {info.uid: copies[0]}):
            return False
        intent = dataclasses.replace(orphan, uidvalidity=status.uidvalidity, src_uid=info.uid, deleting=True)
        self.journal.begin([intent])  # deleting from the start: the copy is proven already
        self.remover.remove(self.session, folder, [info.uid])
        self.journal.complete([intent])
        log.info("folder %s: finished uid %d, stored before a UIDVALIDITY change", folder, info.uid)
        self._done(folder, "encrypt", info.uid, copies[0], orphan.size)
        return True

    def _done(self, folder: str, direction: Direction, src: int, new: int, size: int) -> None:
        self.events.on_message_done(MessageDone(self.account.name, folder, direction, src, new, size))

    # -- restoring and re-encrypting (engine/rewrite.py, through `store`) ----------------------------------
    def restore_folder(self, folder: str, passphrase: str | None = None) -> FolderReport:
        """Replace every encrypted copy in `folder` by its original bytes, flags and INTERNALDATE.

        Afterwards the watermark sits above the restored mail, so `run` does not encrypt it again
        (`backlog` would).
        """
        report = rewrite_folder(self, folder, passphrase, reencrypt=False)
        self.journal.advance_watermark(folder, self.session.select(folder).uidnext - 1)
        return report

    def reencrypt_folder(self, folder: str, passphrase: str | None = None) -> FolderReport:
        """Seal every encrypted copy that is not addressed to exactly the current recipients afresh.

        After `keys rotate` old mail is still sealed to the old key: each such copy is opened (which
        needs the old secret key) and replaced by one sealed to the current recipients, under the same
        protocol as encryption (journal, append, verify, delete the old copy).
        """
        return rewrite_folder(self, folder, passphrase, reencrypt=True)
