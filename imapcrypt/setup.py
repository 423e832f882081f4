"""Setting up an account: the one flow behind `imapcrypt init` and the tray's wizard (docs/cli.md#init).

The steps run in the order that fails early and cheaply, and each writes only what it needs:

1. `SetUp.check_server`: connect and log in (the typed password, the password command or the token
   command), list the folders (INBOX first) and say where the password will live: the OS keyring if
   one works, else a password command must be given right there (`NoKeyringError`). Writes nothing.
2. `SetUp.choose_folders`: the folders to watch. Writes nothing.
3. `SetUp.make_key` (the GnuPG home is created 0700 when missing, the key generated, its backup written,
   the self-test run) or `SetUp.pick_key` (a key already in the home, self-tested). Writes the key and
   its backup only.
4. `SetUp.save`: the password into the keyring, the configuration file, then the self-test's proof.

A set-up that fails or is cancelled before `save` calls `SetUp.abandon`, which removes what it made
(the generated key, its revocation certificate and its backup): nothing is left behind, and running
it again with the same options starts afresh. Only a process killed between making the key and saving
leaves that key in the GnuPG home; the next set-up offers it (`list_keys`, `init --key FPR`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imapcrypt.config import write as config_write
from imapcrypt.config.model import Account, Config, default_data_dir, load_config
from imapcrypt.doctor import checks as doctor
from imapcrypt.doctor.check import Check
from imapcrypt.errors import CredentialsError, ImapcryptError, RecipientKeyError, ServerError, TlsError
from imapcrypt.imap.connect import unreachable
from imapcrypt.keys import manage as keys
from imapcrypt.keys.selftest import SelfTestResult, confirm_secret_elsewhere, record_self_test, self_test
from imapcrypt.openpgp.gnupg import GnuPG, normalise_fingerprint
from imapcrypt.openpgp.run import run_gpg
from imapcrypt.secrets import forget_account_password, keyring_problem, store_account_password
from imapcrypt.wiring import open_account, open_session

log = logging.getLogger(__name__)

MIN_PASSPHRASE = 8


class NoKeyringError(CredentialsError):
    """The login worked but no OS keyring can keep the password: a password command is needed.

    `checks` are the lines that passed before it (the login among them), for showing.
    """

    checks: tuple[Check, ...] = ()


def base_config(path: Path, data_dir: Path | None = None, gnupg_home: Path | None = None) -> Config:
    """The configuration a new account joins: the file's if it exists, else the defaults (unwritten)."""
    if path.exists():
        existing = load_config(path)
        return dataclasses.replace(
            existing,
            data_dir=data_dir or existing.data_dir,
            gnupg_home=gnupg_home or existing.gnupg_home,
        )
    data = data_dir or default_data_dir()
    return Config(path=path, gnupg_home=gnupg_home or data / "gnupg", data_dir=data)


def order_folders(names: Sequence[str]) -> tuple[str, ...]:
    """Folder names sorted as people read them: INBOX first, then by name ignoring case."""
    return tuple(sorted(set(names), key=lambda n: (n.upper() != "INBOX", n.casefold(), n)))


def failed_check(exc: ImapcryptError) -> Check:
    """The one ✘ line (with its fix) that a failed server step shows, named after what failed."""
    if isinstance(exc, NoKeyringError):
        name = "password storage"
    elif isinstance(exc, CredentialsError):
        name = "login"
    elif isinstance(exc, TlsError):
        name = "TLS certificate"
    else:
        name = "server"
    return Check(name, "FAIL", exc.message, exc.fix)


@dataclass(frozen=True)
class ServerReport:
    """What the server check found: the lines to show, the folders, and where the password lives."""

    checks: tuple[Check, ...]
    folders: tuple[str, ...]
    suggested: tuple[str, ...]  # the folders to watch unless the user chooses others
    password_place: str  # in words, e.g. "the OS keyring" or "the password command"


@dataclass(frozen=True)
class DryRun:
    """What the first run would do, counted without changing anything on the server."""

    would_encrypt: int
    already_encrypted: int
    too_young: int


@dataclass
class SetUp:
    """One set-up in progress: what is known so far and what it has made (to remove it again).

    Each step is a blocking call (IMAP, GnuPG); the wizard runs them off the GUI thread, one at a time.
    """

    base: Config
    account: Account
    # As typed; kept in memory until `save` puts it into the keyring, and never in a repr or a log.
    password: str = field(default="", repr=False)
    report: ServerReport | None = None
    key: str = ""
    made_key: str = ""
    backup: Path | None = None
    proof: SelfTestResult | None = None
    elsewhere: bool = False
    saved: Config | None = None
    _made_files: list[Path] = field(default_factory=list)

    # -- 1. the server, the login and where the password will live ---------------------------------
    def check_server(self) -> ServerReport:
        """Log in and list the folders; raise on the first failure (refused login: CredentialsError).

        NoKeyringError when the login worked but the password has nowhere to live: the caller asks
        for a password command and checks again.
        """
        account = self.account
        where = f"{account.host}:{account.port}"
        reason = unreachable(account.host, account.port)
        if reason:
            raise ServerError(reason, "check the server name and port (your provider's help pages list them)")
        password = self.password
        use_typed = not (account.password_command or account.token_command)
        session = open_session(account, (lambda: password) if use_typed else None)
        try:
            tls = "none: cleartext to a loopback host" if account.security == "plain" else "verified"
            lines = [
                Check("server", "OK", f"{where} answers"),
                Check("TLS certificate", "OK", tls),
                Check("login", "OK", f"logged in as {account.username}"),
                *doctor.session_checks(account, session),
            ]
            folders = order_folders(session.list_folders())
            suggested = ("INBOX", "\\All") if session.is_gmail else ("INBOX",)
        finally:
            session.logout()
        try:
            place = self._password_place()
        except NoKeyringError as exc:
            exc.checks = tuple(lines)
            raise
        lines.append(Check("password storage", "OK", f"the password will be kept in {place}"))
        self.report = ServerReport(tuple(lines), folders, suggested, place)
        return self.report

    def _password_place(self) -> str:
        if self.account.token_command:
            return "no place: the token command gives a fresh token each time"
        if self.account.password_command:
            return "the password command (imapcrypt never stores it)"
        problem = keyring_problem()
        if problem:
            raise NoKeyringError(
                f"the server accepted the password, but there is no OS keyring to keep it in ({problem})",
                "give a password command: a command that prints the password, e.g. `pass show mail/me`",
            )
        return "the OS keyring"

    def adopt_key(self, earlier: SetUp) -> None:
        """Take over the key an earlier attempt of this set-up made or chose (the user went back to
        the first page and logged in again): it is not made twice, and `abandon` still removes it."""
        self.key, self.made_key, self.backup = earlier.key, earlier.made_key, earlier.backup
        self.proof, self.elsewhere = earlier.proof, earlier.elsewhere
        self._made_files = list(earlier._made_files)
        if self.key:
            self.account = dataclasses.replace(self.account, recipients=(self.key,))

    # -- 2. folders --------------------------------------------------------------------------------
    def choose_folders(self, folders: Sequence[str]) -> None:
        """Watch these folders (at least one)."""
        chosen = tuple(f for f in (f.strip() for f in folders) if f)
        if not chosen:
            raise ImapcryptError("no folder chosen", "choose at least one folder, e.g. INBOX")
        self.account = dataclasses.replace(self.account, folders=chosen)

    # -- 3. the key ----------------------------------------------------------------------------------
    def gnupg(self) -> GnuPG:
        """The GnuPG home, created (mode 0700) when missing: python-gnupg refuses a missing one."""
        self.base.gnupg_home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return GnuPG(self.base.gnupg_home)

    def make_key(
        self, uid: str, passphrase: str, backup: Path | None, algorithm: str = "ed25519"
    ) -> keys.KeyInfo:
        """Generate a key, back it up to `backup` (a new file, 0600) and self-test it.

        Everything that can be refused without gpg is checked first (the passphrase, the backup path).
        """
        if self.key:
            raise ImapcryptError(f"this set-up already has the key {self.key}", "go on to the next step")
        if len(passphrase) < MIN_PASSPHRASE:
            raise CredentialsError(
                f"the passphrase is shorter than {MIN_PASSPHRASE} characters",
                "choose a longer one (a few words are best)",
            )
        if backup is not None:
            backup = backup.expanduser()
            if backup.exists():
                raise ImapcryptError(f"{backup} already exists", "choose a new file name; nothing was made")
            if not backup.parent.is_dir():
                raise ImapcryptError(f"there is no folder {backup.parent}", "choose an existing folder")
        gpg = self.gnupg()
        info = keys.generate_key(gpg, uid, passphrase, algorithm)
        self.made_key = info.fingerprint
        self._made_files.append(keys.revocation_certificate_path(gpg, info.fingerprint))
        try:
            if backup is not None:
                self.backup = keys.backup_secret(gpg, info.fingerprint, backup, passphrase)
                self._made_files.append(self.backup)
            self._prove(gpg, info.fingerprint, passphrase, elsewhere=False)
        except BaseException:
            self.abandon()  # a key without its backup or proof is no key to keep: try again afresh
            raise
        return info

    def pick_key(self, fingerprint: str, passphrase: str | None, elsewhere: bool = False) -> keys.KeyInfo:
        """Use a key already in the GnuPG home: its secret key opens a probe, or (`elsewhere`) the user
        confirms that its secret key lives on another device."""
        if self.key:
            raise ImapcryptError(f"this set-up already has the key {self.key}", "go on to the next step")
        if not self.base.gnupg_home.is_dir():  # nothing to pick from: and nothing is made for it
            raise RecipientKeyError(
                f"there is no GnuPG home at {self.base.gnupg_home} yet, so no key to use",
                "make a new key, or import yours with `imapcrypt keys import`",
            )
        gpg = GnuPG(self.base.gnupg_home)
        info = keys.find_key(gpg, normalise_fingerprint(fingerprint))
        self._prove(gpg, info.fingerprint, passphrase, elsewhere)
        return info

    def _prove(self, gpg: GnuPG, fingerprint: str, passphrase: str | None, elsewhere: bool) -> None:
        """Self-test `fingerprint`; only a key that passed (or is confirmed elsewhere) becomes the key."""
        result = self_test(gpg, [fingerprint], passphrase)
        if not result.passed and not (elsewhere and result.needs_confirmation):
            if result.needs_confirmation:
                raise RecipientKeyError(
                    f"the secret key of {fingerprint} is not on this computer",
                    "confirm that it opens mail on another device, or use a key whose secret part is here",
                )
            raise RecipientKeyError(
                "the key did not pass the self-test: "
                + "; ".join(result.problems or ("it did not decrypt",)),
                "check the passphrase, or use a key whose secret part you hold",
            )
        self.key, self.proof, self.elsewhere = fingerprint, result, not result.passed
        self.account = dataclasses.replace(self.account, recipients=(fingerprint,))

    # -- 4. save -------------------------------------------------------------------------------------
    def config(self) -> Config:
        """The configuration as it will be written: the base file's accounts plus this one."""
        return config_write.with_account(self.base, self.account)

    def save(self) -> Config:
        """Keep the password (keyring), write the configuration file, then record the self-test's proof."""
        if not self.key or self.proof is None:
            raise RecipientKeyError("no key has passed the self-test yet", "make or choose a key first")
        account, data_dir = self.account, self.base.data_dir
        in_keyring = not (account.password_command or account.token_command)
        if in_keyring:
            store_account_password(account, self.password)
        try:
            self.saved = config_write.save(self.config())
        except BaseException:
            # No configuration, no keyring entry: `abandon` then removes the key, nothing stays.
            if in_keyring:
                forget_account_password(account)
            raise
        # Last, once the key is in the configuration for good: should this fail, the engine refuses
        # to start until `imapcrypt keys self-test` (its fix) records the proof; nothing is lost.
        if self.elsewhere:
            confirm_secret_elsewhere(data_dir, account.name, [self.key])
        else:
            record_self_test(data_dir, account.name, self.proof)
        self.password = ""
        log.info("set-up saved account %s", account.name)
        return self.saved

    def dry_run(self) -> dict[str, DryRun]:
        """Count, per chosen folder, what the first run would encrypt; nothing changes on the server."""
        config = self.saved or self.config()
        counts: dict[str, DryRun] = {}
        with open_account(config, config.account(self.account.name)) as opened:
            for folder in self.account.folders:
                report = opened.engine.encrypt_folder(folder, backlog=True, dry_run=True)
                already = report.already_ours + report.sender_encrypted
                counts[folder] = DryRun(report.would_encrypt, already, report.too_young)
        return counts

    # -- a cancelled or failed set-up ----------------------------------------------------------------
    def abandon(self) -> list[str]:
        """Remove what this set-up made (key, revocation certificate, backup) unless it was saved.

        Returns what was removed, in words. Nothing was ever encrypted to a key of an unsaved set-up,
        so removing it cannot cost a message.
        """
        if self.saved is not None:
            return []
        removed: list[str] = []
        if self.made_key:
            gpg = GnuPG(self.base.gnupg_home)
            output = run_gpg(gpg, ["--yes", "--delete-secret-and-public-key", self.made_key])
            if output.ok:
                removed.append(f"the key {self.made_key}")
            self.made_key = self.key = ""
        for path in self._made_files:
            if path.exists():
                path.unlink()
                removed.append(str(path))
        self._made_files.clear()
        self.backup, self.proof = None, None
        self.account = dataclasses.replace(self.account, recipients=())
        return removed


def list_keys(config: Config) -> list[keys.KeyInfo]:
    """The keys in the GnuPG home that can encrypt now (none while the home does not exist)."""
    if not config.gnupg_home.is_dir():
        return []
    return [k for k in keys.list_keys(GnuPG(config.gnupg_home)) if k.can_encrypt]


def new_key_uid(username: str, name: str = "") -> str:
    """The user id for a new key: "Name <address>", or the address alone as its own name."""
    if "@" not in username:
        return name or username
    return f"{name or username} <{username}>"


def run_steps(setup: SetUp, steps: Sequence[Callable[[], object]]) -> None:
    """Run `steps` in order; on any failure (or Ctrl-C) remove what the set-up made, then re-raise."""
    try:
        for step in steps:
            step()
    except BaseException:
        setup.abandon()
        raise
