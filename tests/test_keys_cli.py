"""`imapcrypt keys …` end to end: real GnuPG, a real configuration file, passphrases over a pipe."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapcrypt.cli import keys as cli_keys
from imapcrypt.cli import main as cli
from imapcrypt.config.model import load_config
from imapcrypt.errors import CredentialsError, ImapcryptError, RecipientKeyError
from imapcrypt.keys import manage as keys
from imapcrypt.keys.selftest import proven_keys, require_self_test
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.secrets import remembered_passphrase
from tests.fixtures.keyrings import MemoryKeyring
from tests.fixtures.keys import PASSPHRASE, Specimen, make_home, remove_home

PLACEHOLDER = "0" * 40


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, GnuPG]]:
    """A configuration file with one account (a placeholder recipient) and an empty GnuPG home."""
    gpg = make_home()
    path = tmp_path / "config.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[gnupg]\nhome = "{gpg.home}"\n\n'
        '[[account]]\nname = "me"\nhost = "127.0.0.1"\nsecurity = "plain"\nusername = "u"\n'
        f'recipients = ["{PLACEHOLDER}"]  # set by keys generate --use\n'
    )
    yield path, gpg
    remove_home(gpg)


def passphrase_fd(passphrase: str) -> str:
    read_end, write_end = os.pipe()
    os.write(write_end, passphrase.encode() + b"\n")
    os.close(write_end)
    return str(read_end)


def run(config: Path, *argv: str) -> int:
    """The keys commands as the main parser runs them (--config before the command)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path)
    cli_keys.register(parser.add_subparsers())
    args = parser.parse_args(["--config", str(config), *argv])
    try:
        code: int = args.handler(args)
        return code
    finally:
        fd = getattr(args, "passphrase_fd", None)
        if fd is not None:
            os.close(fd)


def test_generate_use_backup_remember(
    setup: tuple[Path, GnuPG],
    memory_keyring: MemoryKeyring,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_path, gpg = setup
    backup = tmp_path / "secret.asc"
    fd = passphrase_fd(PASSPHRASE)
    code = run(
        config_path, "keys", "generate", "Me <me@example.org>", "--use", "--backup", str(backup),
        "--remember", "--passphrase-fd", fd,
    )  # fmt: skip
    assert code == 0
    [key] = keys.list_keys(gpg)
    config = load_config(config_path)
    assert config.account("me").recipients == (key.fingerprint,)
    assert "# set by keys generate --use" in config_path.read_text()
    assert backup.stat().st_mode & 0o777 == 0o600
    assert remembered_passphrase(key.fingerprint) == PASSPHRASE
    assert require_self_test(config.data_dir, config.account("me")).how == "decrypted"
    out = capsys.readouterr().out
    assert PASSPHRASE not in out
    assert str(keys.revocation_certificate_path(gpg, key.fingerprint)) in out
    assert "Keep it offline" in out
    # The remembered passphrase serves the next command that needs one.
    assert run(config_path, "keys", "backup", key.fingerprint, str(tmp_path / "again.asc")) == 0


def test_remember_without_keyring_fails_after_the_key_exists(setup: tuple[Path, GnuPG]) -> None:
    config_path, gpg = setup
    with pytest.raises(CredentialsError, match="OS keyring"):
        run(config_path, "keys", "generate", "Me <me@example.org>", "--no-backup", "--remember",
            "--passphrase-fd", passphrase_fd(PASSPHRASE))  # fmt: skip
    assert len(keys.list_keys(gpg)) == 1


def test_generate_refuses_an_empty_passphrase(setup: tuple[Path, GnuPG]) -> None:
    config_path, gpg = setup
    with pytest.raises(CredentialsError, match="empty passphrase"):
        run(
            config_path,
            "keys",
            "generate",
            "Me <me@example.org>",
            "--no-backup",
            "--passphrase-fd",
            passphrase_fd(""),
        )
    assert keys.list_keys(gpg) == []


def test_rotate_keeps_the_old_key_and_proves_the_new(
    setup: tuple[Path, GnuPG], capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, gpg = setup
    run(config_path, "keys", "generate", "Old <me@example.org>", "--use", "--no-backup",
        "--passphrase-fd", passphrase_fd(PASSPHRASE))  # fmt: skip
    [old] = keys.list_keys(gpg)
    old_mail = gpg.encrypt(b"old mail", [old.fingerprint])
    code = run(config_path, "keys", "rotate", "--generate", "New <me@example.org>", "--no-backup",
               "--passphrase-fd", passphrase_fd(PASSPHRASE))  # fmt: skip
    assert code == 0
    new = next(k for k in keys.list_keys(gpg) if k.fingerprint != old.fingerprint)
    config = load_config(config_path)
    assert config.account("me").recipients == (new.fingerprint,)
    assert new.fingerprint in proven_keys(config.data_dir, "me")
    assert gpg.decrypt(old_mail, PASSPHRASE) == b"old mail"
    assert "stays readable" in capsys.readouterr().out


def test_recipients_add_remove_and_refuse_unfit_keys(
    setup: tuple[Path, GnuPG], key_specimens: dict[str, Specimen], tmp_path: Path
) -> None:
    config_path, gpg = setup
    keys.import_keys(gpg, key_specimens["good"].public)
    good = key_specimens["good"].fingerprint
    assert run(config_path, "keys", "use", good) == 0
    weak_file = tmp_path / "weak.asc"
    weak_file.write_bytes(key_specimens["weak"].public)
    with pytest.raises(RecipientKeyError, match="RSA below 2048"):
        run(config_path, "keys", "import", str(weak_file))
    with pytest.raises(RecipientKeyError, match="no key"):
        run(config_path, "keys", "add-recipient", key_specimens["weak"].fingerprint)
    escrow = make_home()
    try:
        escrow_key = keys.generate_key(escrow, "Escrow <escrow@example.org>", "")
        escrow_file = tmp_path / "escrow.asc"
        escrow_file.write_bytes(keys.export_public(escrow, escrow_key.fingerprint))
    finally:
        remove_home(escrow)
    assert run(config_path, "keys", "import", str(escrow_file)) == 0
    assert run(config_path, "keys", "add-recipient", escrow_key.fingerprint) == 0
    assert load_config(config_path).account("me").recipients == (good, escrow_key.fingerprint)
    assert run(config_path, "keys", "remove-recipient", good) == 0
    assert load_config(config_path).account("me").recipients == (escrow_key.fingerprint,)


def test_self_test_needs_the_secret_or_the_users_word(
    setup: tuple[Path, GnuPG], key_specimens: dict[str, Specimen]
) -> None:
    config_path, gpg = setup
    keys.import_keys(gpg, key_specimens["good"].public)
    run(config_path, "keys", "use", key_specimens["good"].fingerprint)
    config = load_config(config_path)
    with pytest.raises(RecipientKeyError, match="no recipient key has passed the self-test"):
        require_self_test(config.data_dir, config.account("me"))
    with pytest.raises(RecipientKeyError, match="no secret key here"):
        run(config_path, "keys", "self-test")
    assert run(config_path, "keys", "self-test", "--secret-elsewhere") == 0
    assert require_self_test(config.data_dir, config.account("me")).how == "elsewhere"


def test_revoke_warns_about_accounts_still_using_the_key(
    setup: tuple[Path, GnuPG], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, gpg = setup
    run(config_path, "keys", "generate", "Me <me@example.org>", "--use", "--no-backup",
        "--passphrase-fd", passphrase_fd(PASSPHRASE))  # fmt: skip
    [key] = keys.list_keys(gpg)
    with pytest.raises(ImapcryptError, match="not revoked"):
        run(config_path, "keys", "revoke", key.fingerprint)  # no --yes, no terminal to ask
    published = tmp_path / "revoked.asc"
    assert run(config_path, "keys", "revoke", key.fingerprint, "--yes", "-o", str(published)) == 0
    assert published.read_bytes().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    out = capsys.readouterr().out
    assert "Account 'me' still encrypts to it" in out
    run(config_path, "keys", "list")
    listing = capsys.readouterr().out
    assert "REVOKED" in listing
    assert f"FAIL {key.fingerprint}: the key is revoked" in listing


def test_main_command_line_runs_keys_and_maps_errors_to_exit_codes(
    setup: tuple[Path, GnuPG], capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, _ = setup
    assert cli.main(["--config", str(config_path), "keys", "list"]) == 0
    assert "No keys in" in capsys.readouterr().out
    assert cli.main(["--config", str(config_path), "keys", "use", "ABCD"]) == RecipientKeyError.exit_code
    assert "not a full key fingerprint" in capsys.readouterr().err
