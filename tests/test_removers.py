"""How each kind of server deletes an original (imapcrypt/imap/removers.py), on real Dovecot variants:
the remover the server's capabilities call for, and that it touches no message but the ones named."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from imapcrypt.errors import TransientError
from imapcrypt.imap.connect import connect
from imapcrypt.imap.profile import ServerProfile
from imapcrypt.imap.removers import Remover, remover_for
from imapcrypt.imap.session import Session
from imapcrypt.journal import Journal
from tests.fixtures.corpus import varied_seeds
from tests.fixtures.dovecot import DovecotServer, hide_capabilities
from tests.fixtures.engine import Rig
from tests.fixtures.proxy import FaultProxy

NOT_GMAIL = ServerProfile(gmail=False, announces_gmail=False, configured="auto")


@contextmanager
def opened(rig: Rig, tmp_path: Path) -> Iterator[tuple[Session, Journal]]:
    session = connect(rig.account, lambda: rig.mailbox.password)
    journal = Journal(tmp_path / "journal.sqlite3")
    try:
        session.select("INBOX")
        yield session, journal
    finally:
        journal.close()
        session.logout()


def _remover(session: Session, journal: Journal) -> Remover:
    return remover_for(session, "purge", NOT_GMAIL, journal)


@pytest.mark.parametrize(
    ("hidden", "name"),
    [((), "uid-expunge"), (("UIDPLUS",), "move-to-trash"), (("UIDPLUS", "MOVE"), "sole-expunge")],
)
def test_the_server_s_capabilities_choose_the_remover(
    hidden: tuple[str, ...],
    name: str,
    dovecot_factory: Callable[[str], DovecotServer],
    rig_on: Callable[[DovecotServer], Rig],
    tmp_path: Path,
) -> None:
    rig = rig_on(dovecot_factory(hide_capabilities(*hidden) if hidden else ""))
    with opened(rig, tmp_path) as (session, journal):
        assert _remover(session, journal).name == name


def test_the_gmail_profile_always_gets_the_gmail_remover(rig: Rig, tmp_path: Path) -> None:
    # Even on a server that can expunge single UIDs: on Gmail that would only remove a label.
    gmail = ServerProfile(gmail=True, announces_gmail=False, configured="gmail")
    with opened(rig, tmp_path) as (session, journal):
        assert session.can_expunge_uid
        assert remover_for(session, "purge", gmail, journal).name == "gmail"


@pytest.mark.parametrize("hidden", [(), ("UIDPLUS",)])
def test_removing_takes_exactly_the_named_messages(
    hidden: tuple[str, ...],
    dovecot_factory: Callable[[str], DovecotServer],
    rig_on: Callable[[DovecotServer], Rig],
    tmp_path: Path,
) -> None:
    rig = rig_on(dovecot_factory(hide_capabilities(*hidden) if hidden else ""))
    seeds = varied_seeds(4)
    uids = rig.mailbox.seed(seeds)
    with rig.mailbox.client() as client:  # the user marked one for deletion and has not expunged it
        client.select_folder("INBOX")
        client.add_flags([uids[3]], [b"\\Deleted"])
    with opened(rig, tmp_path) as (session, journal):
        remover = _remover(session, journal)
        assert remover.refusal(session, "INBOX", uids[:2]) is None
        remover.remove(session, "INBOX", uids[:2])
    left = rig.mailbox.state()
    assert [m.uid for m in left] == uids[2:]
    assert b"\\Deleted" in left[1].flags  # the user's own choice, still theirs to expunge


def test_without_uidplus_and_move_a_foreign_deleted_message_is_a_refusal(
    dovecot_factory: Callable[[str], DovecotServer], rig_on: Callable[[DovecotServer], Rig], tmp_path: Path
) -> None:
    rig = rig_on(dovecot_factory(hide_capabilities("UIDPLUS", "MOVE")))
    uids = rig.mailbox.seed(varied_seeds(3))
    with rig.mailbox.client() as client:
        client.select_folder("INBOX")
        client.add_flags([uids[2]], [b"\\Deleted"])
    with opened(rig, tmp_path) as (session, journal):
        remover = _remover(session, journal)
        reason = remover.refusal(session, "INBOX", uids[:1])
        assert reason is not None
        assert "1 other message(s) in INBOX are marked deleted" in reason
    assert len(rig.mailbox.state()) == 3


def test_the_expunge_waits_for_the_store_it_depends_on(rig: Rig, tmp_path: Path) -> None:
    # RFC 3501 §5.5: a client must not pipeline commands whose results depend on each other. Dovecot
    # runs UID STORE and UID EXPUNGE side by side, so a pipelined pair left originals, marked
    # \Deleted, beside their copies under load (three backlogs at once: 25 duplicates).
    # Cut the connection once the STORE is done but before its answer: had the EXPUNGE been sent
    # without waiting, the server would have it and the messages would be gone.
    uids = rig.mailbox.seed(varied_seeds(3))
    proxy = FaultProxy(rig.mailbox.server.port).start()
    try:
        proxied = rig.at_port(proxy.port)
        with opened(proxied, tmp_path) as (session, journal):
            proxy.cut_after("UID STORE", 1)
            with pytest.raises(TransientError):
                _remover(session, journal).remove(session, "INBOX", uids[:2])
    finally:
        proxy.stop()
    assert proxy.count("UID EXPUNGE") == 0
    left = rig.mailbox.state()
    assert [m.uid for m in left] == uids
    assert all(b"\\Deleted" in m.flags for m in left[:2])  # marked: the next run's recovery finishes
