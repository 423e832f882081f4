"""One process per account, one journal per account name, and a journal that cannot be trusted is
refused (docs/cli.md#running-as-a-service, docs/engine.md#the-journal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from imapcrypt.cli.main import main
from imapcrypt.config.model import Config
from imapcrypt.errors import TransientError
from imapcrypt.lock import AccountLock, lock_path
from imapcrypt.message import envelope
from imapcrypt.wiring import journal_path, open_journal
from tests.fixtures.corpus import varied_seeds
from tests.fixtures.engine import Rig, assert_exactly_once
from tests.fixtures.processes import daemon_process
from tests.fixtures.proxy import FaultProxy
from tests.fixtures.waiting import wait_for

WRITING_COMMANDS = [["backlog"], ["run", "--once"], ["restore"], ["reencrypt"]]


def _ours(rig: Rig) -> int:
    return sum(1 for m in rig.mailbox.state() if envelope.classify(m.body) is envelope.Kind.OURS)


@pytest.mark.parametrize("command", WRITING_COMMANDS, ids=" ".join)
def test_every_command_that_writes_is_refused_while_another_process_holds_the_account(
    rig: Rig, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    seeds = varied_seeds(3)
    rig.mailbox.seed(seeds)
    config = str(rig.write_config())
    before = rig.mailbox.state()
    with AccountLock(rig.data_dir, rig.account.name):
        assert main(["--config", config, *command]) == 7
    err = capsys.readouterr().err
    assert f"PID {os.getpid()}" in err
    assert err.startswith("imapcrypt: ")
    assert rig.mailbox.state() == before


def test_backlog_beside_a_running_daemon_exits_7_and_nothing_is_doubled(rig: Rig, tmp_path: Path) -> None:
    seeds = varied_seeds(40)
    rig.mailbox.seed(seeds)
    config = rig.write_config()
    log_file = tmp_path / "daemon.log"
    daemon = daemon_process(config, log_file)
    try:
        held = lock_path(rig.data_dir, rig.account.name)
        wait_for(
            lambda: (
                (held.exists() and held.read_text().strip() == str(daemon.pid)) or daemon.poll() is not None
            ),
            timeout=30,
            what="the daemon holding the account",
        )
        for second in (["backlog"], ["backlog"], ["run", "--once"]):
            done = subprocess.run(
                [sys.executable, "-m", "imapcrypt", "--config", str(config), *second],
                capture_output=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 7, done.stderr.decode()
            assert f"PID {daemon.pid}" in done.stderr.decode()
        wait_for(lambda: _ours(rig) == 40 or daemon.poll() is not None, timeout=120, what="the daemon's pass")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, errors = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, errors.decode()
    assert _ours(rig) == 40
    assert_exactly_once(rig, seeds)


def test_account_names_never_share_a_journal_or_a_lock(rig: Rig) -> None:
    spaced = replace(rig.account, name="my mail")
    underscored = replace(rig.account, name="my_mail")
    config = replace(rig.config(), accounts=(spaced, underscored))
    assert journal_path(config, spaced) != journal_path(config, underscored)
    assert lock_path(rig.data_dir, spaced.name) != lock_path(rig.data_dir, underscored.name)
    with AccountLock(rig.data_dir, spaced.name), AccountLock(rig.data_dir, underscored.name):
        pass  # both held at once: they are different locks
    with open_journal(config, spaced) as journal:
        journal.advance_watermark("INBOX", 42)
    with open_journal(config, underscored) as journal:
        assert journal.folder("INBOX").watermark == 0
    for name in ("../evil", "a/b", "%41"):
        path = journal_path(config, replace(rig.account, name=name))
        assert path.parent == rig.data_dir / "journals"
    assert journal_path(config, replace(rig.account, name="%41")) != journal_path(
        config, replace(rig.account, name="A")
    )


def _legacy_journal(config: Config) -> Path:
    """A journal as an older imapcrypt wrote it for the account "my mail", with a watermark in it."""
    legacy = config.data_dir / "journals" / "my_mail.sqlite3"
    with open_journal(config, replace(config.accounts[0], name="my_mail")) as journal:
        journal.advance_watermark("INBOX", 42)
    assert legacy.exists()
    return legacy


def test_a_journal_under_the_old_file_name_is_kept_when_it_is_unambiguous(rig: Rig) -> None:
    spaced = replace(rig.account, name="my mail")
    config = replace(rig.config(), accounts=(spaced,))
    legacy = _legacy_journal(replace(config, accounts=(replace(spaced, name="my_mail"),)))
    assert journal_path(config, spaced) == legacy
    with open_journal(config, spaced) as journal:
        assert journal.folder("INBOX").watermark == 42
        assert journal.path.name == "my%20mail.sqlite3"
    assert not legacy.exists()
    assert journal_path(config, spaced).name == "my%20mail.sqlite3"


def test_an_old_journal_two_accounts_shared_stays_with_the_name_it_has(rig: Rig) -> None:
    spaced = replace(rig.account, name="my mail")
    underscored = replace(rig.account, name="my_mail")
    config = replace(rig.config(), accounts=(spaced, underscored))
    legacy = _legacy_journal(config)
    assert journal_path(config, underscored) == legacy
    assert journal_path(config, spaced) != legacy


@pytest.mark.parametrize("damage", ["random", "empty", "half"])
def test_a_damaged_journal_is_refused_with_the_fix_and_nothing_is_doubled(
    rig: Rig, fault_proxy: FaultProxy, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    seeds = varied_seeds(4)
    rig.mailbox.seed(seeds)
    # A crash right after an APPEND: the journal alone knows that copy is in flight.
    fault_proxy.cut_after("APPEND", 1)
    with pytest.raises(TransientError), rig.at_port(fault_proxy.port).engine() as engine:
        engine.encrypt_folder("INBOX")
    path = journal_path(rig.config(), rig.account)
    data = path.read_bytes()
    assert len(data) > 4096
    damaged = {"random": os.urandom(len(data)), "empty": b"", "half": data[: len(data) // 2]}[damage]
    path.write_bytes(damaged)
    in_flight = rig.mailbox.state()
    config = str(rig.write_config())
    for command in (["backlog"], ["run", "--once"], ["status"]):
        assert main(["--config", config, *command]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"imapcrypt: the journal {path} ")
        assert "\n" not in err
        assert "move it aside" in err
        assert "Traceback" not in err
    assert rig.mailbox.state() == in_flight
    assert path.read_bytes() == damaged

    # The fix, as the message gives it: a new journal, whose first pass doubles nothing.
    path.rename(path.with_name(path.name + ".damaged"))
    assert main(["--config", config, "backlog"]) == 0
    assert "4 encrypted" in capsys.readouterr().out
    assert _ours(rig) == 4
    assert_exactly_once(rig, seeds)
