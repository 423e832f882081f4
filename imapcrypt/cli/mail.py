"""The engine's subcommands: `run`, `backlog`, `restore`, `status`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import TextIO

from imapcrypt.config.model import Account, Config, load_config
from imapcrypt.daemon import AccountWorker, StateChange
from imapcrypt.engine import FolderReport
from imapcrypt.errors import ImapcryptError
from imapcrypt.events import MessageDone, Progress
from imapcrypt.wiring import (
    account_passphrase,
    locked_account,
    open_account,
    open_journal,
    ready_to_encrypt,
)

log = logging.getLogger(__name__)


class TerminalEvents:
    """Shows engine progress on a terminal: a redrawn bar on a TTY, a line every few seconds otherwise."""

    def __init__(self, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.stream = stream or sys.stderr  # looked up now, not at import: it may have been replaced
        self.tty = self.stream.isatty()
        self.every = every
        self._last = 0.0

    def on_progress(self, progress: Progress) -> None:
        """Draw the bar (or print a line) with count, rate and ETA."""
        now = time.monotonic()
        finished = progress.done >= progress.total
        if not self.tty and not finished and now - self._last < self.every:
            return
        self._last = now
        eta = "--:--" if progress.eta_seconds is None else _clock(progress.eta_seconds)
        percent = 100 * progress.done // progress.total if progress.total else 100
        filled = percent // 5
        line = (
            f"{progress.folder} [{'#' * filled}{'.' * (20 - filled)}] {progress.done}/{progress.total} "
            f"{percent}% {progress.rate:.1f} msg/s ETA {eta}"
        )
        self.stream.write(f"\r{line}\x1b[K" if self.tty else f"{line}\n")
        if self.tty and finished:
            self.stream.write("\n")
        self.stream.flush()

    def on_message_done(self, done: MessageDone) -> None:
        """Nothing per message on a terminal: the bar counts them."""

    def on_error(self, error: ImapcryptError) -> None:
        """Print the error on its own line."""
        prefix = "\n" if self.tty else ""
        self.stream.write(f"{prefix}imapcrypt: {error}\n")


class LogEvents:
    """Reports a daemon's events as log lines (counts, UIDs, sizes; never subjects or addresses)."""

    def on_progress(self, progress: Progress) -> None:
        """Progress is not logged line by line: passes log a summary."""

    def on_message_done(self, done: MessageDone) -> None:
        """One line per replaced message."""
        log.info(
            "%s account=%s folder=%s uid=%d new_uid=%d size=%d",
            "encrypted" if done.direction == "encrypt" else "restored",
            done.account,
            done.folder,
            done.uid,
            done.new_uid,
            done.size,
        )

    def on_error(self, error: ImapcryptError) -> None:
        """Errors are logged with their fix."""
        log.error("%s", error)

    def on_state(self, change: StateChange) -> None:
        """State changes are logged."""
        retry = f" retry_in={change.retry_in:.0f}s" if change.retry_in is not None else ""
        log.info("state account=%s state=%s%s", change.account, change.state.value, retry)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _accounts(config: Config, name: str | None) -> list[Account]:
    return [config.account(name)] if name is not None else list(config.accounts)


def _folders(account: Account, folder: str | None) -> tuple[str, ...]:
    return (folder,) if folder else account.folders


def _summary(account: Account, report: FolderReport) -> str:
    parts = [
        f"{report.encrypted} encrypted" if report.encrypted else "",
        f"{report.restored} restored" if report.restored else "",
        f"{report.would_encrypt} would be encrypted" if report.would_encrypt else "",
        f"{report.already_ours} already encrypted by imapcrypt" if report.already_ours else "",
        f"{report.sender_encrypted} encrypted by the sender (left as is)" if report.sender_encrypted else "",
        f"{report.too_young} inside the grace period" if report.too_young else "",
        f"{report.marked_deleted} marked deleted (left for your client)" if report.marked_deleted else "",
        f"{report.waiting} waiting" if report.waiting else "",
        f"{report.too_large} over the server's size limit (skipped)" if report.too_large else "",
        f"{report.failed} failed" if report.failed else "",
        f"{report.unverified} not verified on the server (originals kept; the next run checks again)"
        if report.unverified
        else "",
        f"{report.rejected} not stored as sent (removed; retried next time)" if report.rejected else "",
        f"{report.parked} parked (see `imapcrypt status`)" if report.parked else "",
        f"{report.recovered} finished after an interruption" if report.recovered else "",
    ]
    text = ", ".join(p for p in parts if p) or "nothing to do"
    return f"{account.name}/{report.folder}: {text}"


def _encrypt(args: argparse.Namespace, backlog: bool) -> int:
    config = load_config(args.config)
    failures = 0
    for account in _accounts(config, args.account):
        ready_to_encrypt(config, account)
        # A dry run changes nothing, so it may run beside a daemon; everything else takes the lock.
        opening = open_account if args.dry_run else locked_account
        with opening(config, account, TerminalEvents()) as opened:
            for folder in _folders(account, getattr(args, "folder", None)):
                if getattr(args, "retry_parked", False) and not args.dry_run:
                    opened.journal.unpark(folder)
                report = opened.engine.encrypt_folder(folder, backlog=backlog, dry_run=args.dry_run)
                print(_summary(account, report))
                failures += report.failed + report.rejected + report.unverified
    return 1 if failures else 0


def cmd_run(args: argparse.Namespace) -> int:
    """`imapcrypt run`: watch every account's folders until SIGTERM/SIGINT; `--once`: one pass."""
    if args.once:
        return _encrypt(args, backlog=False)
    config = load_config(args.config)
    return run_workers([AccountWorker(config, a, LogEvents()) for a in _accounts(config, args.account)])


def run_workers(workers: list[AccountWorker]) -> int:
    """Run each worker in its own thread until a signal asks them to stop.

    The first SIGTERM or SIGINT lets the batch in flight finish (or leaves it for recovery) and
    returns 0; a second SIGINT exits at once, and the next run's recovery finishes the work.
    """
    failures: list[BaseException] = []

    def serve(worker: AccountWorker) -> None:
        try:
            worker.run()
        except BaseException as exc:  # handed to the main thread, which reports it
            failures.append(exc)
            for other in workers:
                other.stop()

    def on_signal(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT and stopping.is_set():
            os._exit(130)  # the second Ctrl-C: stop now, recovery handles what was in flight
        stopping.set()
        for worker in workers:
            worker.stop()

    stopping = threading.Event()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    threads = [threading.Thread(target=serve, args=(w,), name=f"imapcrypt-{w.account.name}") for w in workers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)  # short joins keep the main thread responsive to signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for failure in failures:
        raise failure
    return 0


def cmd_backlog(args: argparse.Namespace) -> int:
    """`imapcrypt backlog`: encrypt every unencrypted message, with progress; resumes after interruption."""
    return _encrypt(args, backlog=True)


def _rewrite(args: argparse.Namespace, reencrypt: bool) -> int:
    config = load_config(args.config)
    failures = 0
    for account in _accounts(config, args.account):
        if reencrypt:
            ready_to_encrypt(config, account)
        passphrase = account_passphrase(account)
        with locked_account(config, account, TerminalEvents()) as opened:
            for folder in _folders(account, args.folder):
                engine = opened.engine
                report = (engine.reencrypt_folder if reencrypt else engine.restore_folder)(folder, passphrase)
                print(_summary(account, report))
                failures += report.failed + report.rejected + report.unverified
    return 1 if failures else 0


def cmd_restore(args: argparse.Namespace) -> int:
    """`imapcrypt restore`: decrypt every encrypted copy back to the original bytes, flags and date."""
    return _rewrite(args, reencrypt=False)


def cmd_reencrypt(args: argparse.Namespace) -> int:
    """`imapcrypt reencrypt`: seal mail encrypted to an old key afresh to the current recipients."""
    return _rewrite(args, reencrypt=True)


def cmd_status(args: argparse.Namespace) -> int:
    """`imapcrypt status`: per account and folder, what the journal knows (no server contact)."""
    config = load_config(args.config)
    for account in _accounts(config, args.account):
        with open_journal(config, account) as journal:
            known = {record.name: record for record in journal.folders()}
            for folder in account.folders:
                record = journal.folder(folder)
                known.pop(folder, None)
                error = f", last error: {record.last_error}" if record.last_error else ""
                print(
                    f"{account.name}/{folder}: {record.encrypted} encrypted, {record.waiting} waiting, "
                    f"{record.restored} restored, last run {record.last_run or 'never'}{error}"
                )
                for rejected in journal.rejections(folder):
                    state = "parked" if rejected.parked else "retrying"
                    print(
                        f"{account.name}/{folder}: uid {rejected.src_uid} {state} "
                        f"({rejected.failures} copies not stored as sent: {rejected.reason})"
                    )
            for name in known:
                print(f"{account.name}/{name}: no longer watched")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `run`, `backlog`, `restore` and `status` to the command line."""
    account_help = "only this account (default: every account)"
    run = subparsers.add_parser("run", help="watch the folders and encrypt new mail as it arrives")
    run.add_argument("--once", action="store_true", help="one pass over every folder, then exit")
    run.add_argument("--account", help=account_help)
    run.set_defaults(handler=cmd_run, dry_run=False)

    backlog = subparsers.add_parser("backlog", help="encrypt the mail already in the folders")
    backlog.add_argument("--account", help=account_help)
    backlog.add_argument("--folder", help="only this folder (default: the account's folders)")
    backlog.add_argument(
        "--dry-run", action="store_true", help="count what would be encrypted; change nothing"
    )
    backlog.add_argument(
        "--retry-parked",
        action="store_true",
        help="try again the messages parked because the server did not store their copies as sent",
    )
    backlog.set_defaults(handler=cmd_backlog)

    restore = subparsers.add_parser(
        "restore", help="decrypt encrypted mail back to the original (the way out)"
    )
    restore.add_argument("--account", help=account_help)
    restore.add_argument("--folder", help="only this folder (default: the account's folders)")
    restore.set_defaults(handler=cmd_restore)

    reencrypt = subparsers.add_parser(
        "reencrypt", help="move encrypted mail to the current recipients (after `keys rotate`)"
    )
    reencrypt.add_argument("--account", help=account_help)
    reencrypt.add_argument("--folder", help="only this folder (default: the account's folders)")
    reencrypt.set_defaults(handler=cmd_reencrypt)

    status = subparsers.add_parser("status", help="what has been encrypted, what waits, the last error")
    status.add_argument("--account", help=account_help)
    status.set_defaults(handler=cmd_status)
