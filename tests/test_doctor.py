"""`imapcrypt doctor` against the real Dovecot variants: capabilities, TLS, login, keys, keyring."""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest

from imapcrypt.cli import doctor as doctor_command
from imapcrypt.config.model import Config, parse_config
from imapcrypt.doctor import checks as doctor
from imapcrypt.doctor.check import Check
from imapcrypt.doctor.checks import check_account, check_journal, check_keyring
from imapcrypt.journal import Journal
from imapcrypt.keys import manage as keys
from imapcrypt.keys.selftest import confirm_secret_elsewhere
from imapcrypt.openpgp.gnupg import GnuPG
from tests.fixtures.dovecot import DovecotServer, hide_capabilities
from tests.fixtures.keyrings import MemoryKeyring
from tests.fixtures.keys import make_home, remove_home
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.tls import TlsDovecot


@pytest.fixture(scope="module")
def key_home() -> Iterator[tuple[GnuPG, str]]:
    """A GnuPG home with one healthy key (no passphrase)."""
    gpg = make_home("ickd-")
    try:
        yield gpg, keys.generate_key(gpg, "Doc <doc@example.org>", "").fingerprint
    finally:
        remove_home(gpg)


def config_for(
    tmp_path: Path,
    gpg: GnuPG,
    recipient: str,
    port: int,
    user: str,
    *,
    security: str = "plain",
    extra: str = "",
) -> Config:
    text = f"""
data_dir = "{tmp_path / "data"}"
[gnupg]
home = "{gpg.home}"

[[account]]
name = "test"
host = "127.0.0.1"
port = {port}
security = "{security}"
username = "{user}"
password_command = "echo {user}-pw"
recipients = ["{recipient}"]
{extra}
"""
    path = tmp_path / "config.toml"
    path.write_text(text)
    return parse_config(text, path)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_plain_dovecot_is_healthy(mailbox: Mailbox, key_home: tuple[GnuPG, str], tmp_path: Path) -> None:
    gpg, fingerprint = key_home
    config = config_for(tmp_path, gpg, fingerprint, mailbox.port, mailbox.user)
    confirm_secret_elsewhere(config.data_dir, "test", [fingerprint])
    checks = by_name(check_account(config, config.accounts[0]))
    for name in ("server", "login", "UIDPLUS", "MOVE", "IDLE", "SPECIAL-USE", "folder INBOX", "journal"):
        assert checks[name].status == "OK", checks[name].line()
    assert checks["MULTIAPPEND/LITERAL+"].detail.startswith("a batch of copies")
    assert checks["Gmail"].detail == "not Gmail (generic IMAP profile)"
    assert checks[f"recipient {fingerprint}"].status == "OK"
    assert checks["encryption"].status == "OK", checks["encryption"].line()
    assert checks["encryption"].detail.startswith("in process")
    assert checks["self-test"].status == "OK"
    assert "elsewhere" in checks["self-test"].detail
    assert "Trash folder" not in checks  # UIDPLUS with policy purge never needs it


def test_without_uidplus_doctor_warns_and_checks_the_trash(
    dovecot_factory: Callable[[str], DovecotServer],
    mailbox_on: Callable[[DovecotServer], Mailbox],
    mailbox: Mailbox,
    key_home: tuple[GnuPG, str],
    tmp_path: Path,
) -> None:
    gpg, fingerprint = key_home
    variant = mailbox_on(dovecot_factory(hide_capabilities("UIDPLUS")))
    config = config_for(tmp_path, gpg, fingerprint, mailbox.port, mailbox.user)
    with_uidplus = by_name(check_account(config, config.accounts[0]))
    config = config_for(tmp_path, gpg, fingerprint, variant.port, variant.user)
    without = by_name(check_account(config, config.accounts[0]))
    assert with_uidplus["UIDPLUS"].status == "OK"
    assert without["UIDPLUS"].status == "WARN"
    assert "moved to Trash" in without["UIDPLUS"].detail
    assert without["Trash folder"].line() == "OK    Trash folder: Trash (\\Trash)"
    assert without["self-test"].status == "WARN"  # nothing proven in this data dir


def test_missing_password_and_missing_folder_fail_with_a_fix(
    mailbox: Mailbox, key_home: tuple[GnuPG, str], tmp_path: Path
) -> None:
    # A failing password_command, not a wrong password: Dovecot slows down every later login from an
    # address that failed one (auth penalty), which would slow the whole test session.
    gpg, fingerprint = key_home
    config = config_for(tmp_path, gpg, fingerprint, mailbox.port, mailbox.user, extra='folders = ["Nope"]')
    account = replace(config.accounts[0], password_command="exit 3")
    checks = by_name(check_account(config, account))
    assert checks["login"].status == "FAIL"
    assert checks["login"].detail == "the password_command failed with exit status 3"
    assert "by hand" in checks["login"].fix
    checks = by_name(check_account(config, config.accounts[0]))
    assert checks["login"].status == "OK"
    assert checks["folder Nope"].status == "FAIL"
    assert "fix: create it" in checks["folder Nope"].line()


def test_unreachable_server_fails_first_and_local_checks_still_run(
    key_home: tuple[GnuPG, str], tmp_path: Path
) -> None:
    gpg, fingerprint = key_home
    config = config_for(tmp_path, gpg, fingerprint, 1, "nobody")
    checks = check_account(config, config.accounts[0])
    assert checks[0].name == "server"
    assert checks[0].status == "FAIL"
    assert "login" not in by_name(checks)
    assert by_name(checks)[f"recipient {fingerprint}"].status == "OK"


def test_self_signed_certificate_fails_with_its_fingerprint(
    tls_dovecot: TlsDovecot,
    mailbox_on: Callable[[DovecotServer], Mailbox],
    key_home: tuple[GnuPG, str],
    tmp_path: Path,
) -> None:
    gpg, fingerprint = key_home
    user = mailbox_on(tls_dovecot.server).user
    config = config_for(tmp_path, gpg, fingerprint, tls_dovecot.tls_port, user, security="tls")
    checks = by_name(check_account(config, config.accounts[0]))
    tls = checks["TLS certificate"]
    assert tls.status == "FAIL"
    assert f"SHA-256 {tls_dovecot.fingerprint_sha256}" in tls.detail
    assert "subject CN=127.0.0.1" in tls.detail
    assert "issuer CN=127.0.0.1" in tls.detail
    assert "ca_file" in tls.fix
    assert checks["login"].status == "FAIL"
    # Trusting it (ca_file) turns the same server green, STARTTLS included.
    extra = f'ca_file = "{tls_dovecot.cert_path}"'
    for port, security in ((tls_dovecot.tls_port, "tls"), (tls_dovecot.starttls_port, "starttls")):
        config = config_for(tmp_path, gpg, fingerprint, port, user, security=security, extra=extra)
        trusted = by_name(check_account(config, config.accounts[0]))
        assert trusted["TLS certificate"].status == "OK", trusted["TLS certificate"].line()
        assert tls_dovecot.fingerprint_sha256 in trusted["TLS certificate"].detail
        assert trusted["login"].status == "OK"


def test_unhealthy_recipient_fails(mailbox: Mailbox, tmp_path: Path) -> None:
    gpg = make_home()
    try:
        info = keys.generate_key(gpg, "Old <old@example.org>", "", expires="10d")
        config = config_for(tmp_path, gpg, info.fingerprint, mailbox.port, mailbox.user)
        soon = by_name(check_account(config, config.accounts[0]))[f"recipient {info.fingerprint}"]
        assert soon.status == "WARN"
        assert "expires on" in soon.detail
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=11)
        gone = by_name(check_account(config, config.accounts[0], now=later))[f"recipient {info.fingerprint}"]
        assert gone.status == "FAIL"
        assert "expired" in gone.detail
        assert gone.fix == "imapcrypt keys rotate"
    finally:
        remove_home(gpg)


def test_keyring_without_backend_warns_with_the_password_command_alternative() -> None:
    check = check_keyring(keyring.backends.fail.Keyring())
    assert check.status == "WARN"
    assert "password_command" in check.fix
    # The session's own choice: conftest sets no backend, as on a headless machine.
    assert check_keyring().status == "WARN"


def test_plaintext_keyring_warns_and_a_working_one_passes() -> None:
    plaintext = check_keyring(PlaintextKeyring())
    assert plaintext.status == "WARN"
    assert "unencrypted" in plaintext.detail
    check = check_keyring(MemoryKeyring())
    assert check.status == "OK", check.line()
    assert check.detail == "tests.fixtures.keyrings.MemoryKeyring"


class PlaintextKeyring(MemoryKeyring):
    """Named like keyrings.alt's file backend, which writes secrets unencrypted: imapcrypt refuses it."""


def test_journal_states(key_home: tuple[GnuPG, str], tmp_path: Path) -> None:
    gpg, fingerprint = key_home
    config = config_for(tmp_path, gpg, fingerprint, 1, "u")
    account = config.accounts[0]
    assert check_journal(config, account).detail.startswith("none yet")
    path = doctor.journal_path(config, account)
    Journal(path).close()
    assert check_journal(config, account).status == "OK"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    newer = check_journal(config, account)
    assert newer.status == "FAIL"
    assert "newer" in newer.detail


def test_doctor_command_prints_one_line_per_check_and_exits_1_on_fail(
    mailbox: Mailbox, key_home: tuple[GnuPG, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gpg, fingerprint = key_home
    config = config_for(tmp_path, gpg, fingerprint, mailbox.port, mailbox.user)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    doctor_command.register(sub)
    args = parser.parse_args(["doctor", "--account", "test"])
    args.config = config.path
    assert args.handler(args) == 0  # a WARN (no self-test yet, no keyring) is not a failure
    out = capsys.readouterr().out
    assert "OK    UIDPLUS:" in out
    assert "WARN  self-test:" in out
    assert "WARN  keyring:" in out
    assert out.rstrip().splitlines()[-1].startswith("0 FAIL")
