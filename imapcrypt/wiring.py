"""How one account's parts are wired together, for the engine's callers (CLI, daemon, doctor, tray).

`open_account` wires one account's parts together (GnuPG home, journal, id secret, a logged-in
session, the engine) and closes them all again; callers never build those pieces by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from imapcrypt.config.model import Account, Config, account_file_stem, legacy_file_stem
from imapcrypt.engine import Engine
from imapcrypt.events import EngineEvents
from imapcrypt.imap.claims import claim_keyword
from imapcrypt.imap.connect import connect
from imapcrypt.imap.session import Session
from imapcrypt.journal import Journal
from imapcrypt.keys.fitness import require_recipients
from imapcrypt.keys.selftest import require_self_test
from imapcrypt.lock import AccountLock
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.private import private_dir, private_file
from imapcrypt.secrets import account_password, id_secret, remembered_passphrase, run_secret_command


def journal_path(config: Config, account: Account) -> Path:
    """Where the account's journal lives: one SQLite file per account in the data dir.

    A journal written under the older, lossy file name is still found there while it cannot belong
    to another account (`open_journal` then moves it to the new name).
    """
    journals = config.data_dir / "journals"
    path = journals / f"{account_file_stem(account.name)}.sqlite3"
    legacy = journals / f"{legacy_file_stem(account.name)}.sqlite3"
    if legacy == path or path.exists() or not legacy.exists():
        return path
    sharing = [a for a in config.accounts if legacy_file_stem(a.name) == legacy_file_stem(account.name)]
    # Two accounts once shared that file: it cannot be told whose it is, so neither takes it over
    # (the one whose name it is keeps it under its own, unchanged name).
    return legacy if [a.name for a in sharing] == [account.name] else path


def open_journal(config: Config, account: Account) -> Journal:
    """The account's journal, created on first use, in directories and a file only its owner reads; one
    under the older file name is renamed first.

    Call it while holding the account's lock: nothing else may have the file open while it moves.
    """
    path = journal_path(config, account)
    private_dir(config.data_dir)
    private_dir(path.parent)
    wanted = path.parent / f"{account_file_stem(account.name)}.sqlite3"
    if path != wanted:
        # Closing the last connection copies the -wal file into the main one and removes it: then
        # the main file alone holds everything, and one rename moves it whole.
        Journal(path).close()
        if not path.with_name(path.name + "-wal").exists():
            path = path.rename(wanted)
    journal = Journal(path)
    private_file(path)  # SQLite gives its -wal and -journal files the database file's mode
    return journal


def open_session(account: Account, password: Callable[[], str] | None = None) -> Session:
    """A logged-in session for `account`: XOAUTH2 through its token_command if it has one, else the
    password from `password` if given (a wizard that has not saved it yet), else the keyring or
    password_command."""
    if account.token_command:
        command: str = account.token_command
        return connect(account, lambda: "", lambda: run_secret_command(command, "token_command"))
    return connect(account, password or (lambda: account_password(account)))


def account_passphrase(account: Account) -> str | None:
    """The secret key's passphrase: `passphrase_command`, else one the user asked the keyring to
    remember for a recipient key; None lets gpg-agent ask (pinentry)."""
    if account.passphrase_command:
        return run_secret_command(account.passphrase_command, "passphrase_command")
    for recipient in account.recipients:
        remembered = remembered_passphrase(recipient)
        if remembered is not None:
            return remembered
    return None


def ready_to_encrypt(config: Config, account: Account) -> None:
    """Refuse to encrypt for `account` until every recipient key is fit (usable, unexpired, unrevoked,
    strong enough) and one of them passed the self-test or the user confirmed its secret lives elsewhere.

    Raises RecipientKeyError naming the key and the reason.
    """
    require_recipients(GnuPG(config.gnupg_home), account.recipients)
    require_self_test(config.data_dir, account)


@dataclass
class OpenAccount:
    """One account's engine with everything it holds open."""

    account: Account
    engine: Engine
    session: Session
    journal: Journal
    gpg: GnuPG


@contextmanager
def open_account(
    config: Config,
    account: Account,
    events: EngineEvents | None = None,
    *,
    password: Callable[[], str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Iterator[OpenAccount]:
    """Connect and log in, open the journal and the GnuPG home; close all of it on exit.

    `password` and `clock` replace the account's password source and the wall clock (see open_session).
    """
    with ExitStack() as stack:
        gpg = GnuPG(config.gnupg_home)
        journal = open_journal(config, account)
        stack.callback(journal.close)
        secret = id_secret(config.data_dir)
        session = open_session(account, password)
        stack.callback(session.logout)
        keyword = claim_keyword(config.data_dir)
        engine = Engine(
            account, session, gpg, journal, secret, events=events, clock=clock, claim_keyword=keyword
        )
        stack.callback(engine.close)
        yield OpenAccount(account, engine, session, journal, gpg)


@contextmanager
def locked_account(
    config: Config, account: Account, events: EngineEvents | None = None
) -> Iterator[OpenAccount]:
    """`open_account` while holding the account's lock, for every one-shot command that writes
    (`backlog`, `run --once`, `restore`, `reencrypt`): raises LockedError (exit 7, naming the holder's
    PID) when a daemon, the tray app or another command already works on the account."""
    with AccountLock(config.data_dir, account.name), open_account(config, account, events) as opened:
        yield opened
