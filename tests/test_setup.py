"""imapcrypt/setup.py's small parts: folder order, why a server cannot be reached, failed-step lines."""

from __future__ import annotations

from imapcrypt.errors import CredentialsError, ServerError, TlsError
from imapcrypt.imap.connect import unreachable
from imapcrypt.setup import NoKeyringError, failed_check, new_key_uid, order_folders
from tests.fixtures.dovecot import free_loopback_port
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
