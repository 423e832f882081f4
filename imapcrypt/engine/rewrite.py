"""Restoring and re-encrypting a folder (`imapcrypt restore`, `keys rotate` then `reencrypt`): each
encrypted copy is opened with GnuPG and replaced, under the same protocol as encryption, by the
original (restore) or by a copy sealed to the current recipients (re-encrypt)."""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from typing import Protocol

from imapcrypt.config.model import Account
from imapcrypt.engine.batches import GROUP_BYTES, Prepared, by_bytes, chunks
from imapcrypt.engine.report import FolderReport, unverified_note
from imapcrypt.errors import EnvelopeError, ImapcryptError, ServerError
from imapcrypt.events import Direction, EngineEvents, RateMeter
from imapcrypt.imap.removers import Remover
from imapcrypt.imap.session import FolderStatus, MessageInfo, Session
from imapcrypt.journal import Journal
from imapcrypt.keys.manage import encryption_key_ids
from imapcrypt.message import copy, envelope
from imapcrypt.openpgp import gnupg as openpgp
from imapcrypt.openpgp.gnupg import GnuPG


class EngineParts(Protocol):
    """What rewriting needs of the engine (engine/core.py), which calls in here: its open session,
    journal, remover and worker pool, and the two halves of its protocol, sealing and storing."""

    @property
    def account(self) -> Account: ...

    @property
    def session(self) -> Session: ...

    @property
    def gpg(self) -> GnuPG: ...

    @property
    def journal(self) -> Journal: ...

    @property
    def remover(self) -> Remover: ...

    @property
    def events(self) -> EngineEvents: ...

    @property
    def id_secret(self) -> bytes: ...

    @property
    def stopping(self) -> threading.Event: ...

    @property
    def pool(self) -> Executor: ...

    def open_folder(self, folder: str) -> tuple[FolderStatus, int]: ...

    def seal(
        self, info: MessageInfo, raw: bytes, *, again: bool = False
    ) -> envelope.Sealed | ImapcryptError | None: ...

    def store(
        self, status: FolderStatus, prepared: list[Prepared], direction: Direction, report: FolderReport
    ) -> tuple[set[int], set[int]]: ...


# The recipients' PKESK packets sit at the start of a copy's armor: this much of it names them all.
_KEY_ID_BYTES = 65536


def rewrite_folder(engine: EngineParts, folder: str, passphrase: str | None, reencrypt: bool) -> FolderReport:
    """Restore (or, with `reencrypt`, re-seal) every encrypted copy in `folder` that needs it, under
    the engine's protocol: journal, append, verify, delete the old copy."""
    report = FolderReport(folder)
    status, report.recovered = engine.open_folder(folder)
    current = encryption_key_ids(engine.gpg, engine.account.recipients) if reencrypt else frozenset()
    parked = engine.journal.parked(folder, "encrypt" if reencrypt else "restore")
    uids = engine.session.uids_above(0)
    meter = RateMeter(engine.account.name, folder, len(uids))
    for batch in chunks(uids, engine.account.batch_size):
        if engine.stopping.is_set():
            break
        infos = engine.session.fetch_info(batch, envelope.CLASSIFY_HEADERS)
        ours = [i for i in infos.values() if envelope.classify(i.headers) is envelope.Kind.OURS]
        report.parked += sum(1 for i in ours if i.uid in parked)
        ours = [i for i in ours if i.uid not in parked]
        report.candidates += len(ours)
        if ours:
            refusal = engine.remover.refusal(engine.session, folder, [i.uid for i in ours])
            if refusal:
                raise ServerError(f"not rewriting encrypted mail now: {refusal}", "try again later")
        for group in by_bytes(ours, GROUP_BYTES):
            done = _rewrite_group(
                engine, status, group, passphrase=passphrase, current=current, report=report
            )
            if reencrypt:
                report.encrypted += done
            else:
                report.restored += done
        engine.events.on_progress(meter.advance(len(batch)))
    waiting = report.failed + report.rejected + report.parked + report.unverified
    engine.journal.note_run(folder, waiting, unverified_note(report))
    return report


def _rewrite_group(
    engine: EngineParts,
    status: FolderStatus,
    group: list[MessageInfo],
    *,
    passphrase: str | None,
    current: frozenset[str],
    report: FolderReport,
) -> int:
    """Restore (no `current` key IDs) or re-seal (copies not sealed to exactly `current`) a group."""
    bodies = engine.session.fetch_bodies([i.uid for i in group])
    present = [info for info in group if info.uid in bodies]
    if current:
        present = [
            info
            for info in present
            if openpgp.session_key_ids(copy.armor_block(bodies[info.uid])[:_KEY_ID_BYTES]) != current
        ]
        report.already_ours += len(group) - len(present)

    def rewrite(info: MessageInfo) -> Prepared | ImapcryptError:
        try:
            original = envelope.restore(
                bodies[info.uid], engine.gpg, passphrase, max_bytes=engine.account.max_message_bytes
            )
        except EnvelopeError as exc:
            # The same type (a wrong passphrase stays a DecryptError), now naming the message.
            return type(exc)(f"uid {info.uid} in {status.name} skipped: {exc.message}", exc.fix)
        except Exception as exc:  # one hostile copy must not abort the folder (docs/engine.md)
            return EnvelopeError(
                f"uid {info.uid} in {status.name} skipped: it could not be decrypted ({type(exc).__name__})",
                "it stays encrypted as it is",
            )
        if not current:
            seal_id = envelope.message_id(original, engine.id_secret)
            return Prepared(info, original, seal_id, info.flags, info.internaldate)
        sealed = engine.seal(info, original, again=True)
        if not isinstance(sealed, envelope.Sealed):
            return sealed or EnvelopeError(f"uid {info.uid} no longer opens as a plain message")
        return Prepared(info, sealed.message, sealed.id, info.flags, info.internaldate)

    prepared: list[Prepared] = []
    for result in engine.pool.map(rewrite, present):
        if isinstance(result, ImapcryptError):
            report.failed += 1
            engine.events.on_error(result)
        else:
            prepared.append(result)
    stored, _ = engine.store(status, prepared, "encrypt" if current else "restore", report)
    return len(stored)
