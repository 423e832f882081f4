"""`imapcrypt init`: the account and key wizard in the terminal (docs/cli.md).

It asks for what it is not given as an option (with `--yes` it asks nothing and every value must come
from options) and runs the set-up steps of `imapcrypt.setup` in their order: the login first (a
refused one ends it with exit 3 before any key is made), where the password lives, the folders, the
key with its backup and self-test, then the configuration. It ends with a dry-run count; nothing on
the server is changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, cast

from imapcrypt import setup
from imapcrypt.config import write as config_write
from imapcrypt.config.model import Account, Security, default_config_path, parse_config
from imapcrypt.config.providers import preset_for
from imapcrypt.errors import ConfigError, CredentialsError, ImapcryptError
from imapcrypt.keys import manage as keys
from imapcrypt.openpgp.gnupg import normalise_fingerprint


class Prompter(Protocol):
    """How init asks the user (the terminal, or answers given in advance)."""

    def ask(self, question: str, default: str = "") -> str:
        """A line of text; the default when the answer is empty."""

    def secret(self, question: str) -> str:
        """A secret, not echoed."""

    def yes(self, question: str, default: bool) -> bool:
        """A yes/no answer."""


class TerminalPrompter:
    """Asks on the terminal."""

    def ask(self, question: str, default: str = "") -> str:
        """input(), with the default shown in brackets."""
        shown = f" [{default}]" if default else ""
        return input(f"{question}{shown}: ").strip() or default

    def secret(self, question: str) -> str:
        """getpass(): nothing is echoed."""
        return getpass.getpass(f"{question}: ")

    def yes(self, question: str, default: bool) -> bool:
        """y/n, with the default capitalised."""
        answer = input(f"{question} [{'Y/n' if default else 'y/N'}]: ").strip().lower()
        return default if not answer else answer.startswith("y")


class NoPrompter:
    """`--yes`: every question must already be answered by an option."""

    def ask(self, question: str, default: str = "") -> str:
        """The default, or a ConfigError naming what is missing."""
        if default:
            return default
        raise ConfigError(f"init --yes: no answer for {question!r}", "give it as an option (see --help)")

    def secret(self, question: str) -> str:
        """Never: secrets come from commands or --passphrase-fd in scripts."""
        raise CredentialsError(
            f"init --yes cannot ask for {question.lower()}", "use --password-command and --passphrase-fd"
        )

    def yes(self, question: str, default: bool) -> bool:
        """The default."""
        return default


def _read_fd(fd: int) -> str:
    with os.fdopen(fd, encoding="utf-8", closefd=True) as handle:
        return handle.readline().rstrip("\n")


def _new_passphrase(args: argparse.Namespace, prompter: Prompter) -> str:
    if args.passphrase_fd is not None:
        passphrase = _read_fd(args.passphrase_fd)
    else:
        passphrase = prompter.secret("Passphrase for the new secret key")
        if prompter.secret("The same passphrase again") != passphrase:
            raise CredentialsError("the two passphrases differ", "run `imapcrypt init` again")
    if not passphrase:
        raise CredentialsError("an empty passphrase would leave the secret key unprotected", "choose one")
    return passphrase


def _choose_key(
    args: argparse.Namespace, job: setup.SetUp, prompter: Prompter, say: Callable[[str], None]
) -> None:
    """The key to encrypt to: given, picked from the home, or generated now (with its backup)."""
    fingerprint = args.key
    uid = args.generate_key
    if not fingerprint and not uid:
        mine = setup.list_keys(job.base)
        for key in mine:
            say(f"  {key.fingerprint}  {', '.join(key.uids)}{'' if key.has_secret else ' (public only)'}")
        choice = prompter.ask(
            "Fingerprint of the key to use, or 'new' for a new one", "new" if not mine else ""
        )
        if choice.lower() != "new":
            fingerprint = normalise_fingerprint(choice)
        else:
            uid = prompter.ask(
                "Name and address for the new key, e.g. 'Ann <ann@example.org>'",
                setup.new_key_uid(job.account.username),
            )
    if fingerprint:
        _pick(args, job, fingerprint, prompter)
        return
    passphrase = _new_passphrase(args, prompter)
    backup = args.backup or Path.home() / f"imapcrypt-secret-key-{job.account.name}.asc"
    if not (args.backup or prompter.yes(f"Write a backup of the secret key to {backup} now?", True)):
        backup = None
    key = job.make_key(uid, passphrase, backup, args.algorithm)
    say(f"New key {key.fingerprint} ({key.algorithm}).")
    say(
        f"Revocation certificate: {keys.revocation_certificate_path(job.gnupg(), key.fingerprint)} "
        "(keep a copy offline)."
    )
    if job.backup is not None:
        say(f"Backup written to {job.backup} (readable only by you): store it offline, e.g. on a USB stick.")


def _pick(args: argparse.Namespace, job: setup.SetUp, fingerprint: str, prompter: Prompter) -> None:
    """Self-test a key already in the home (its passphrase asked, or read from --passphrase-fd)."""
    wanted = normalise_fingerprint(fingerprint)
    key = next((k for k in setup.list_keys(job.base) if k.fingerprint == wanted), None)
    if key is None:  # not usable here: pick_key says why (no GnuPG home, unknown, unfit), making nothing
        job.pick_key(wanted, None)
        return
    passphrase: str | None = None
    if args.passphrase_fd is not None:
        passphrase = _read_fd(args.passphrase_fd)
    elif key.has_secret and not isinstance(prompter, NoPrompter):
        passphrase = prompter.secret("Passphrase of that key, for the self-test (empty if none)")
    elsewhere = not key.has_secret and prompter.yes(
        "The secret key is not on this computer. Does it live on another device you can read mail with?",
        False,
    )
    job.pick_key(key.fingerprint, passphrase, elsewhere)


def _log_in(job: setup.SetUp, prompter: Prompter, say: Callable[[str], None]) -> setup.ServerReport:
    """Step 1: log in, then make sure the password has a place to live (else ask for a command)."""
    try:
        report = job.check_server()
    except setup.NoKeyringError as exc:
        say(setup.failed_check(exc).line())
        if isinstance(prompter, NoPrompter):
            raise setup.NoKeyringError(exc.message, "give --password-command") from None
        command = prompter.ask(
            "No OS keyring here. A command that prints the password (e.g. pass show mail/me)"
        )
        if not command:
            raise
        job.account = dataclasses.replace(job.account, password_command=command)
        report = job.check_server()
    except ImapcryptError as exc:
        say(setup.failed_check(exc).line())
        raise
    for check in report.checks:
        say(check.line())
    return report


def run_init(args: argparse.Namespace, prompter: Prompter, say: Callable[[str], None] = print) -> int:
    """Ask, log in, choose folders and key, save the account, and show what would be encrypted."""
    path: Path = args.config or default_config_path()
    base = setup.base_config(path)
    name = args.name or prompter.ask("Account name", "personal" if not base.accounts else "")
    if any(a.name == name for a in base.accounts):
        raise ConfigError(f"{path}: an account named {name!r} exists already", "choose another name")
    username = args.username or prompter.ask("User name (usually your e-mail address)")
    known = preset_for(username)
    if known:
        say(f"{known[0]}: {known[1].note}")
    host = args.host or prompter.ask("IMAP server", known[1].host if known else "")
    port = args.port or int(prompter.ask("Port", str(known[1].port if known else 993)))
    security = cast(Security, args.security or prompter.ask("Security: tls, starttls or plain", "tls"))
    password_command = args.password_command
    if password_command is None and not isinstance(prompter, NoPrompter):
        password_command = prompter.ask(
            "A command that prints the password (empty: keep it in the OS keyring)"
        )
    password = "" if password_command else prompter.secret(f"Password for {username}")
    account = Account(
        name=name,
        host=host,
        username=username,
        recipients=(),
        port=port,
        security=security,
        password_command=password_command or None,
        grace_minutes=args.grace_minutes,
        original=args.original,
    )
    # Refuse bad values (a port out of range, plain to a remote host) before connecting; the key comes
    # later, so a stand-in recipient fills its place in this check only.
    stand_in = dataclasses.replace(account, recipients=("0" * 40,))
    parse_config(config_write.render(config_write.with_account(base, stand_in), write_dirs=True), path)
    job = setup.SetUp(base, account, password)
    report = _log_in(job, prompter, say)
    job.choose_folders(_choose_folders(args, report, prompter, say))
    setup.run_steps(job, [lambda: _choose_key(args, job, prompter, say), job.save])
    assert job.saved is not None  # noqa: S101 - save() sets it or raised
    say(f"Wrote {job.saved.path}.")
    for folder, counted in job.dry_run().items():
        say(
            f"{name}/{folder}: {counted.would_encrypt:,} would be encrypted, "
            f"{counted.already_encrypted:,} are already encrypted"
        )
    say("Nothing was changed on the server. Next: `imapcrypt backlog` for this mail, then `imapcrypt run`.")
    return 0


def _choose_folders(
    args: argparse.Namespace, report: setup.ServerReport, prompter: Prompter, say: Callable[[str], None]
) -> tuple[str, ...]:
    if args.folders:
        return tuple(f.strip() for f in args.folders.split(",") if f.strip())
    say("Folders on the server: " + ", ".join(report.folders))
    answer = prompter.ask("Folders to watch, separated by commas", ",".join(report.suggested))
    return tuple(f.strip() for f in answer.split(",") if f.strip())


def cmd_init(args: argparse.Namespace) -> int:
    """`imapcrypt init`: interactive unless --yes."""
    prompter: Prompter = NoPrompter() if args.yes or not sys.stdin.isatty() else TerminalPrompter()
    return run_init(args, prompter)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `init` to the command line."""
    init = subparsers.add_parser("init", help="set up an account and its key (asks what it is not told)")
    init.add_argument("--name", help="the account's name")
    init.add_argument("--username", help="the IMAP user name, usually the address")
    init.add_argument("--host", help="the IMAP server (known providers are suggested from the address)")
    init.add_argument("--port", type=int)
    init.add_argument("--security", choices=("tls", "starttls", "plain"))
    init.add_argument("--password-command", help="a command that prints the password (else the keyring)")
    key = init.add_mutually_exclusive_group()
    key.add_argument("--key", metavar="FPR", help="encrypt to this key (already in the GnuPG home)")
    key.add_argument("--generate-key", metavar="UID", help="generate a new key for this user id")
    init.add_argument("--algorithm", choices=sorted(keys.ALGORITHMS), default="ed25519")
    init.add_argument("--backup", type=Path, help="where to write the new secret key's backup (0600)")
    init.add_argument("--passphrase-fd", type=int, metavar="N", help="read the key's passphrase from fd N")
    init.add_argument("--folders", help="folders to watch, separated by commas (default: asked; INBOX)")
    init.add_argument("--grace-minutes", type=float, default=0.0, help="only encrypt mail older than this")
    init.add_argument(
        "--original", choices=("purge", "trash"), default="purge", help="what happens to plaintext"
    )
    init.add_argument("--yes", action="store_true", help="ask nothing: every value comes from options")
    init.set_defaults(handler=cmd_init)
