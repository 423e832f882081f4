"""What imapcrypt keeps on disk is its owner's alone (docs/cli.md), whatever the umask says, and a
failing secret command is named, never quoted."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapcrypt.errors import CredentialsError
from imapcrypt.keys.selftest import record_self_test, self_test
from imapcrypt.logs import setup_logging
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.secrets import id_secret, run_secret_command
from imapcrypt.wiring import journal_path, open_journal
from tests.fixtures.engine import Rig
from tests.fixtures.gnupg_home import GnupgHome


@pytest.fixture(autouse=True)
def lax_umask() -> Iterator[None]:
    """The common default: files 0644 and directories 0755 unless imapcrypt says otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_journal_and_its_directories_are_private(rig: Rig, tmp_path: Path) -> None:
    config = rig.config()
    data_dir = tmp_path / "fresh"
    config = type(config)(config.path, config.gnupg_home, data_dir, config.accounts)
    journal = open_journal(config, rig.account)
    journal.close()
    path = journal_path(config, rig.account)
    assert (_mode(data_dir), _mode(path.parent), _mode(path)) == (0o700, 0o700, 0o600)


def test_the_log_and_its_rotated_files_are_private(tmp_path: Path) -> None:
    log_file = tmp_path / "state" / "log" / "imapcrypt.log"
    setup_logging(verbose=False, log_file=log_file)
    try:
        handler = next(h for h in logging.getLogger().handlers if hasattr(h, "doRollover"))
        logging.getLogger("imapcrypt.test").warning("one line")
        handler.doRollover()  # type: ignore[attr-defined]
        logging.getLogger("imapcrypt.test").warning("another line")
    finally:
        setup_logging(verbose=False)
    assert _mode(log_file.parent) == 0o700
    assert {p.name: _mode(p) for p in log_file.parent.iterdir()} == {
        "imapcrypt.log": 0o600,
        "imapcrypt.log.1": 0o600,
    }


def test_the_self_test_record_and_the_id_secret_fallback_are_private(
    tmp_path: Path, gnupg_home: GnupgHome
) -> None:
    data_dir = tmp_path / "data"
    result = self_test(GnuPG(gnupg_home.path), [gnupg_home.fingerprint], None)
    assert result.passed
    record_self_test(data_dir, "acct", result)
    secret_dir = tmp_path / "other"
    assert len(id_secret(secret_dir)) >= 16  # no keyring in tests: the file fallback
    files = [p for p in (*data_dir.rglob("*"), *secret_dir.rglob("*")) if p.is_file()]
    assert files
    assert {p.name: _mode(p) for p in files} == dict.fromkeys((p.name for p in files), 0o600)
    assert (_mode(data_dir), _mode(secret_dir)) == (0o700, 0o700)


@pytest.mark.parametrize("command", ["echo hunter2 >/dev/null; exit 3", "printf ''; : hunter2"])
def test_a_failing_secret_command_is_named_not_quoted(command: str) -> None:
    with pytest.raises(CredentialsError) as raised:
        run_secret_command(command, "password_command")
    assert "password_command" in str(raised.value)
    assert "hunter2" not in str(raised.value)
