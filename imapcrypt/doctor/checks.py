"""`imapcrypt doctor`: one line per check, OK / WARN / FAIL, each with the fix (docs/cli.md).

Per account: the server is reachable, its TLS certificate (subject, issuer, expiry, SHA-256) verifies,
the login works, which capabilities it offers and what their absence costs, the folders exist, the
recipient keys are healthy and passed the self-test, the journal is sound. Once: which gpg runs
(path and version) and the OS keyring.
Nothing the user has is changed: the server sees a login, CAPABILITY, ID and LISTs, and a probe message
in a scratch folder that the check creates and deletes (doctor/probe.py: push delay, stored as sent).
On Gmail instead a read of labels, and a probe message put into Trash and deleted at once
(doctor/gmail.py).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
from cryptography import x509

from imapcrypt.config.model import Account, Config
from imapcrypt.doctor.check import Check
from imapcrypt.doctor.devices import coordination_checks
from imapcrypt.doctor.gmail import gmail_checks
from imapcrypt.doctor.probe import probe_checks
from imapcrypt.doctor.provider import provider_check
from imapcrypt.errors import CredentialsError, ImapcryptError, TlsError
from imapcrypt.imap.claims import INSTALL_ID_FILE, claim_keyword
from imapcrypt.imap.connect import certificate_fingerprint, connect, peer_certificate, unreachable
from imapcrypt.imap.profile import ServerProfile, server_profile
from imapcrypt.imap.session import TRASH, Session
from imapcrypt.journal import SCHEMA_VERSION
from imapcrypt.keys.fitness import check_recipient
from imapcrypt.keys.selftest import proven_keys
from imapcrypt.openpgp.binary import find_gpg, gpg_version, install_gpg_hint
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.openpgp.inprocess import encryptor
from imapcrypt.secrets import SERVICE, account_password, keyring_problem, run_secret_command
from imapcrypt.wiring import journal_path

CERTIFICATE_WARN_DAYS = 30


def _certificate_text(der: bytes) -> tuple[str, x509.Certificate | None]:
    fingerprint = certificate_fingerprint(der)
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return f"unparseable certificate, SHA-256 {fingerprint}", None
    text = (
        f"subject {certificate.subject.rfc4514_string()}, issuer {certificate.issuer.rfc4514_string()}, "
        f"expires {certificate.not_valid_after_utc:%Y-%m-%d}, SHA-256 {fingerprint}"
    )
    return text, certificate


def _tls_check(account: Account, der: bytes, error: TlsError | None, now: dt.datetime) -> Check:
    if not der:
        return Check(
            "TLS certificate",
            "FAIL",
            f"no TLS handshake on port {account.port} (security = {account.security!r})",
            "use port 993 with security = 'tls', or 143 with 'starttls'",
        )
    text, certificate = _certificate_text(der)
    if error is not None:
        reason = error.message.split(";")[0]
        return Check(
            "TLS certificate",
            "FAIL",
            f"not trusted ({reason}); {text}",
            "if this is really your server's certificate (compare the SHA-256 with your provider's), "
            "save its CA certificate as PEM and set ca_file in the account",
        )
    if certificate is not None and certificate.not_valid_after_utc - now < dt.timedelta(
        CERTIFICATE_WARN_DAYS
    ):
        return Check("TLS certificate", "WARN", f"verified, expires soon; {text}", "tell your provider")
    return Check("TLS certificate", "OK", f"verified; {text}")


def _password(account: Account) -> tuple[Callable[[], str], Callable[[], str] | None]:
    if account.token_command:
        command = account.token_command
        return (lambda: ""), (lambda: run_secret_command(command, "token_command"))
    return (lambda: account_password(account)), None


def _server_checks(
    account: Account,
    password: Callable[[], str] | None,
    now: dt.datetime,
    installation: tuple[bytes | None, bool] = (None, True),
) -> list[Check]:
    where = f"{account.host}:{account.port}"
    reason = unreachable(account.host, account.port)
    if reason:
        return [Check("server", "FAIL", reason, "check host, port, the network and firewall")]
    checks = [Check("server", "OK", f"{where} answers")]
    der = peer_certificate(account)
    secret, token = _password(account) if password is None else (password, None)
    try:
        session = connect(account, secret, token)
    except TlsError as exc:
        return [*checks, _tls_check(account, der, exc, now), Check("login", "FAIL", "skipped: TLS failed")]
    except (CredentialsError, ImapcryptError) as exc:
        if account.security != "plain":
            checks.append(_tls_check(account, der, None, now))
        return [*checks, Check("login", "FAIL", exc.message, exc.fix)]
    try:
        if account.security == "plain":
            checks.append(
                Check("TLS certificate", "OK", "none: cleartext to a loopback host (security = 'plain')")
            )
        else:
            checks.append(_tls_check(account, der, None, now))
        checks.append(Check("login", "OK", f"logged in as {account.username}"))
        server = server_profile(session, account.profile)  # decided once for every check below
        checks += _capability_checks(account, session, server)
        checks += _folder_checks(account, session)
        checks += coordination_checks(session, account.folders, *installation)
        checks.append(provider_check(session))
        if not server.gmail:  # Gmail has its own probe (doctor/gmail.py)
            checks += probe_checks(account, session, lambda: connect(account, secret, token))
    except ImapcryptError as exc:
        checks.append(Check("server", "FAIL", exc.message, exc.fix))
    finally:
        session.logout()
    return checks


def session_checks(
    account: Account, session: Session, own: bytes | None = None, new_journal: bool = True
) -> list[Check]:
    """The checks of a logged-in session: what the server offers and what its absence costs, the
    account's folders, and other installations of imapcrypt on it (set-up shows these right after its
    own login, where `own` is None: a new installation has no claim keyword yet)."""
    server = server_profile(session, account.profile)
    return [
        *_capability_checks(account, session, server),
        *_folder_checks(account, session),
        *coordination_checks(session, account.folders, own, new_journal),
    ]


def _capability_checks(account: Account, s: Session, server: ServerProfile) -> list[Check]:
    needs_trash = not s.can_expunge_uid or account.original == "trash"
    if s.can_expunge_uid:
        uidplus = Check(
            "UIDPLUS", "OK", "UID EXPUNGE deletes exactly the replaced message; APPENDUID names the copy"
        )
    elif s.can_move:
        uidplus = Check(
            "UIDPLUS",
            "WARN",
            "missing: copies are found by search and originals moved to Trash, then purged there",
            "nothing to do; ask your provider for UIDPLUS for the exact path",
        )
    else:
        uidplus = Check(
            "UIDPLUS",
            "WARN",
            "missing, and no MOVE: originals are deleted by EXPUNGE, only while no other message in the "
            "folder is marked deleted",
            "expunge folders in your mail client; ask your provider for UIDPLUS",
        )
    checks = [uidplus]
    if s.can_move:
        checks.append(Check("MOVE", "OK", "messages change folder atomically"))
    else:
        checks.append(
            Check(
                "MOVE", "WARN" if needs_trash else "OK", "missing" + ("" if needs_trash else " (not needed)")
            )
        )
    checks.append(
        Check("IDLE", "OK", "the server pushes new mail (how fast: see push delay)")
        if s.can_idle
        else Check("IDLE", "WARN", f"missing: polling every {account.poll_seconds:g}s", "lower poll_seconds")
    )
    special = b"SPECIAL-USE" in s.capabilities
    checks.append(
        Check("SPECIAL-USE", "OK", "folders announce their role (Trash)")
        if special
        else Check(
            "SPECIAL-USE",
            "WARN" if needs_trash else "OK",
            "missing: the Trash folder cannot be found by its role"
            + ("" if needs_trash else " (not needed)"),
            "create a folder named Trash",
        )
    )
    checks.append(
        Check("MULTIAPPEND/LITERAL+", "OK", "a batch of copies is stored in one round trip")
        if s.can_multiappend
        else Check(
            "MULTIAPPEND/LITERAL+", "OK", "not offered: one round trip per message (slower, still safe)"
        )
    )
    checks.append(_gmail_check(server))
    if server.gmail and server.announces_gmail:
        checks += gmail_checks(account, s)
    return checks


def _gmail_check(server: ServerProfile) -> Check:
    if server.announces_gmail and not server.gmail:
        return Check("Gmail", "WARN", "the server is Gmail but profile = 'generic'", "set profile = 'auto'")
    if server.gmail and not server.announces_gmail:
        return Check("Gmail", "WARN", "profile = 'gmail' but the server is not Gmail", "set profile = 'auto'")
    if server.gmail:
        return Check("Gmail", "OK", "Gmail: labels are re-applied and originals go through [Gmail]/Trash")
    return Check("Gmail", "OK", "not Gmail (generic IMAP profile)")


def _folder_checks(account: Account, s: Session) -> list[Check]:
    checks = [
        Check(f"folder {folder}", "OK", "exists")
        if s.folder_exists(folder)
        else Check(f"folder {folder}", "FAIL", "does not exist", "create it, or fix `folders` in the account")
        for folder in account.folders
    ]
    if not s.can_expunge_uid or account.original == "trash":
        trash = s.special_folder(TRASH)
        checks.append(
            Check("Trash folder", "OK", f"{trash} (\\Trash)")
            if trash
            else Check("Trash folder", "FAIL", "no folder has the \\Trash role", "create a Trash folder")
        )
    return checks


def _recipient_checks(config: Config, account: Account, now: dt.datetime) -> list[Check]:
    if not config.gnupg_home.is_dir():
        return [
            Check(
                "recipients", "FAIL", f"no GnuPG home at {config.gnupg_home}", "imapcrypt keys generate --use"
            )
        ]
    gpg = GnuPG(config.gnupg_home)
    checks: list[Check] = []
    for fingerprint in account.recipients:
        try:
            health = check_recipient(gpg, fingerprint, now)
        except ImapcryptError as exc:
            checks.append(Check(f"recipient {fingerprint}", "FAIL", exc.message, exc.fix))
            continue
        name = f"recipient {health.fingerprint}"
        if health.problems:
            checks.append(Check(name, "FAIL", "; ".join(health.problems), "imapcrypt keys rotate"))
        elif health.warnings:
            checks.append(Check(name, "WARN", "; ".join(health.warnings), "imapcrypt keys rotate"))
        else:
            checks.append(Check(name, "OK", "can encrypt, not expiring within 30 days"))
    checks.append(check_encryption_path(gpg, account))
    proven = proven_keys(config.data_dir, account.name)
    wanted = [f.replace(" ", "").upper() for f in account.recipients]
    proofs = [proven[f] for f in wanted if f in proven]
    checks.append(
        Check("self-test", "OK", f"passed on {proofs[0].when:%Y-%m-%d} ({proofs[0].how})")
        if proofs
        else Check(
            "self-test",
            "WARN",
            "no recipient has passed yet: encryption is refused until one does",
            "imapcrypt keys self-test",
        )
    )
    return checks


def check_encryption_path(gpg: GnuPG, account: Account) -> Check:
    """Which OpenPGP path encrypts this account's mail: in process, or a gpg process per message."""
    plan = encryptor(gpg).plan(account.recipients)
    detail = encryptor(gpg).describe(account.recipients)
    if isinstance(plan, str):
        fix = "nothing is wrong, only slower; `pip install pysequoia` if it is missing"
        return Check("encryption", "WARN", detail, fix)
    return Check("encryption", "OK", detail)


def check_keyring(backend: keyring.backend.KeyringBackend | None = None) -> Check:
    """Whether the keyring backend (default: the one keyring chose) can hold passwords safely.

    A headless machine often has none: imapcrypt then needs password_command.
    """
    backend = backend or keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    headless_fix = (
        "set password_command (and passphrase_command) in each account, e.g. 'pass show mail/me'; "
        "or run a Secret Service such as gnome-keyring"
    )
    problem = keyring_problem(backend)
    if problem:
        return Check("keyring", "WARN", problem, headless_fix)
    try:
        backend.get_password(SERVICE, "doctor-probe")
    except keyring.errors.KeyringError as exc:
        return Check("keyring", "WARN", f"{name} does not answer ({type(exc).__name__})", headless_fix)
    return Check("keyring", "OK", name)


def check_gpg(path: str | None = None) -> Check:
    """Which gpg imapcrypt runs (its path and version), or how to install one when there is none."""
    binary = find_gpg(path)
    if binary is None:
        return Check("gpg", "FAIL", "no GnuPG (gpg) on PATH", install_gpg_hint())
    try:
        return Check("gpg", "OK", f"{binary}, {gpg_version(binary)}")
    except OSError as exc:
        return Check("gpg", "FAIL", f"{binary} does not run ({exc})", install_gpg_hint())


def check_journal(config: Config, account: Account) -> Check:
    """Whether the account's journal opens, is not from a newer imapcrypt, and passes SQLite's check."""
    path = journal_path(config, account)
    if not path.exists():
        return Check("journal", "OK", f"none yet ({path} is created by the first run)")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            verdict = str(db.execute("PRAGMA quick_check").fetchone()[0])
            pending = int(db.execute("SELECT count(*) FROM intent").fetchone()[0]) if version else 0
            # Schema 3: messages parked because the server did not store their copies as sent.
            parked = (
                int(db.execute("SELECT count(*) FROM rejected WHERE parked").fetchone()[0])
                if version >= 3
                else 0
            )
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check(
            "journal", "FAIL", f"{path}: {exc}", "move it aside; a new one is rebuilt from the server"
        )
    if version > SCHEMA_VERSION:
        return Check("journal", "FAIL", f"{path}: schema {version} is newer than this imapcrypt", "upgrade")
    if verdict != "ok":
        return Check("journal", "FAIL", f"{path}: damaged ({verdict})", "move it aside and run again")
    if parked or pending:
        return _journal_work(pending, parked)
    return Check("journal", "OK", f"{path}, schema {version}")


def _journal_work(pending: int, parked: int) -> Check:
    """The journal's WARN line for messages in flight or parked."""
    if parked:
        return Check(
            "journal",
            "WARN",
            f"{parked} message(s) parked: the server did not store their encrypted copies as sent",
            "see `imapcrypt status`; once the server is fixed, `imapcrypt backlog --retry-parked`",
        )
    return Check("journal", "WARN", f"{pending} message(s) in flight", "the next run finishes them")


def _installation(config: Config, account: Account) -> tuple[bytes | None, bool]:
    """This installation's claim keyword (None if it never made one) and whether its journal is new."""
    own = claim_keyword(config.data_dir) if (config.data_dir / INSTALL_ID_FILE).exists() else None
    return own, not journal_path(config, account).exists()


def check_account(
    config: Config,
    account: Account,
    password: Callable[[], str] | None = None,
    now: dt.datetime | None = None,
) -> list[Check]:
    """Every check for one account, in order: server, TLS, login, capabilities, folders, keys, journal.

    `password` replaces the account's own source (keyring or password_command), e.g. for the wizard.
    """
    now = now or dt.datetime.now(dt.UTC)
    return [
        *_server_checks(account, password, now, _installation(config, account)),
        *_recipient_checks(config, account, now),
        check_journal(config, account),
    ]
