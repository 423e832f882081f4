"""imapcrypt/setup.py's small parts: folder order, why a server cannot be reached, failed-step lines."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from imapcrypt import setup
from imapcrypt.config.model import Account
from imapcrypt.errors import CredentialsError, RecipientKeyError, ServerError, TlsError, TransientError
from imapcrypt.imap.connect import unreachable
from imapcrypt.imap.translate import translated_errors
from imapcrypt.setup import NoKeyringError, SetUp, base_config, failed_check, new_key_uid, order_folders
from tests.fixtures.dovecot import free_loopback_port
from tests.fixtures.keyrings import MemoryKeyring
from tests.fixtures.keys import remove_tree_with_agent
from tests.fixtures.mailbox import Mailbox


def test_folders_come_inbox_first_then_by_name() -> None:
    found = ["Trash", "archive", "INBOX", "Sent", "[Gmail]/All Mail", "Archive"]
    assert order_folders(found) == ("INBOX", "[Gmail]/All Mail", "Archive", "archive", "Sent", "Trash")


def test_an_unknown_host_and_a_closed_port_are_told_apart(mailbox: Mailbox) -> None:
    unknown = unreachable("no-such-host.invalid", 993)
    assert unknown is not None
    assert "no server called 'no-such-host.invalid'" in unknown
    closed = unreachable("127.0.0.1", free_loopback_port())
    assert closed is not None
    assert "nothing accepts connections on port" in closed
    assert "Errno" not in unknown + closed
    assert unreachable("127.0.0.1", mailbox.port) is None


def test_each_failed_step_is_named_after_what_failed() -> None:
    assert failed_check(CredentialsError("refused", "check it")).name == "login"
    assert failed_check(NoKeyringError("no keyring", "give a command")).name == "password storage"
    assert failed_check(TlsError("untrusted")).name == "TLS certificate"
    line = failed_check(ServerError("down", "wait")).line()
    assert line == "FAIL  server: down (fix: wait)"


def test_a_new_key_is_named_after_the_address() -> None:
    assert new_key_uid("ann@example.org") == "ann@example.org <ann@example.org>"
    assert new_key_uid("ann@example.org", "Ann") == "Ann <ann@example.org>"
    assert new_key_uid("ann") == "ann"


def test_a_save_that_fails_takes_the_password_back_out_of_the_keyring(
    mailbox: Mailbox, memory_keyring: MemoryKeyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(tempfile.mkdtemp(prefix="icsu-"))
    try:
        base = base_config(tmp_path / "config.toml", tmp_path / "data", home / "gnupg")
        account = Account("a", "127.0.0.1", mailbox.user, (), port=mailbox.port, security="plain")
        job = SetUp(base, account, mailbox.password)
        report = job.check_server()
        assert report.password_place == "the OS keyring"
        job.choose_folders(report.suggested)
        job.make_key("Ann <ann@example.org>", "correct horse battery", tmp_path / "backup.asc")

        def disk_full(_config: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(setup.config_write, "save", disk_full)
        with pytest.raises(OSError, match="No space"):
            job.save()
        assert memory_keyring.entries == {}
        removed = job.abandon()
        assert removed[0].startswith("the key ")
        assert not (tmp_path / "backup.asc").exists()
        assert setup.list_keys(base) == []
        assert not (tmp_path / "config.toml").exists()
        assert not (tmp_path / "data").exists()  # no self-test record either
    finally:
        remove_tree_with_agent(home, home / "gnupg")


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        (socket.gaierror(-2, "Name or service not known"), "no server has that name"),
        (ConnectionRefusedError(111, "Connection refused"), "nothing accepts connections on that port"),
        (TimeoutError(), "no answer"),
    ],
)
def test_a_connection_that_does_not_open_says_why_in_words(failure: OSError, words: str) -> None:
    with pytest.raises(TransientError) as raised, translated_errors("mail.example", "connect"):
        raise failure
    assert words in raised.value.message
    assert "Errno" not in str(raised.value)


def test_picking_a_key_where_there_is_no_gnupg_home_makes_nothing(tmp_path: Path) -> None:
    base = base_config(tmp_path / "config.toml", tmp_path / "data", tmp_path / "gnupg")
    job = SetUp(base, Account("a", "127.0.0.1", "u", ()))
    with pytest.raises(RecipientKeyError, match="no GnuPG home"):
        job.pick_key("A" * 40, None)
    assert not (tmp_path / "gnupg").exists()
    assert job.key == ""
