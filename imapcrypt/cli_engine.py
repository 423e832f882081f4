"""The engine's subcommands: `run`, `backlog`, `restore`, `status`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from imapcrypt.api import account_passphrase, open_account, open_journal, ready_to_encrypt
from imapcrypt.config import Account, Config, load_config
from imapcrypt.engine import FolderReport
from imapcrypt.errors import ConfigError, ImapcryptError
from imapcrypt.events import MessageDone, Progress


class TerminalEvents:
    """Shows engine progress on a terminal: a redrawn bar on a TTY, a line every few seconds otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, every: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
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
        f"{report.failed} failed" if report.failed else "",
        f"{report.recovered} finished after an interruption" if report.recovered else "",
    ]
    text = ", ".join(p for p in parts if p) or "nothing to do"
    return f"{account.name}/{report.folder}: {text}"


def _encrypt(args: argparse.Namespace, backlog: bool) -> int:
    config = load_config(args.config)
    failures = 0
    for account in _accounts(config, args.account):
        ready_to_encrypt(config, account)
        with open_account(config, account, TerminalEvents()) as opened:
            for folder in _folders(account, getattr(args, "folder", None)):
                report = opened.engine.encrypt_folder(folder, backlog=backlog, dry_run=args.dry_run)
                print(_summary(account, report))
                failures += report.failed
    return 1 if failures else 0


def cmd_run(args: argparse.Namespace) -> int:
    """`imapcrypt run --once`: encrypt what is new in every watched folder."""
    if not args.once:
        raise ConfigError("watching folders continuously is not built yet", "use `imapcrypt run --once`")
    return _encrypt(args, backlog=False)


def cmd_backlog(args: argparse.Namespace) -> int:
    """`imapcrypt backlog`: encrypt every unencrypted message, with progress; resumes after interruption."""
    return _encrypt(args, backlog=True)


def cmd_restore(args: argparse.Namespace) -> int:
    """`imapcrypt restore`: decrypt every encrypted copy back to the original bytes, flags and date."""
    config = load_config(args.config)
    failures = 0
    for account in _accounts(config, args.account):
        passphrase = account_passphrase(account)
        with open_account(config, account, TerminalEvents()) as opened:
            for folder in _folders(account, args.folder):
                report = opened.engine.restore_folder(folder, passphrase)
                print(_summary(account, report))
                failures += report.failed
    return 1 if failures else 0


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
            for name in known:
                print(f"{account.name}/{name}: no longer watched")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `run`, `backlog`, `restore` and `status` to the command line."""
    account_help = "only this account (default: every account)"
    run = subparsers.add_parser("run", help="encrypt new mail in the watched folders")
    run.add_argument("--once", action="store_true", help="one pass over every folder, then exit")
    run.add_argument("--account", help=account_help)
    run.set_defaults(handler=cmd_run, dry_run=False)

    backlog = subparsers.add_parser("backlog", help="encrypt the mail already in the folders")
    backlog.add_argument("--account", help=account_help)
    backlog.add_argument("--folder", help="only this folder (default: the account's folders)")
    backlog.add_argument(
        "--dry-run", action="store_true", help="count what would be encrypted; change nothing"
    )
    backlog.set_defaults(handler=cmd_backlog)

    restore = subparsers.add_parser(
        "restore", help="decrypt encrypted mail back to the original (the way out)"
    )
    restore.add_argument("--account", help=account_help)
    restore.add_argument("--folder", help="only this folder (default: the account's folders)")
    restore.set_defaults(handler=cmd_restore)

    status = subparsers.add_parser("status", help="what has been encrypted, what waits, the last error")
    status.add_argument("--account", help=account_help)
    status.set_defaults(handler=cmd_status)
