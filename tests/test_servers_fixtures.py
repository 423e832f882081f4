"""The Cyrus, Courier-IMAP and GNU Mailutils fixtures work, and what each server does differently.

Every server here must take an account's messages with flags and dates and give them back; the
quirks pinned below are facts about the real servers (Debian 12's packages) that imapcrypt meets in
the field, kept as tests so that a fixture change or a server upgrade that moves them is noticed.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.fixtures.corpus import varied_seeds
from tests.fixtures.cyrus import DEBIAN_NAMESPACE, CyrusServer, start_cyrus
from tests.fixtures.dovecot import DOVECOT_POST_LOGIN_CAPABILITIES
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.mailutils import MailutilsServer, start_mailutils
from tests.fixtures.servers import LoggingServer
from tests.fixtures.waiting import wait_for

RAW = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: fixture check\r\n"
    b"Message-ID: <fixture-check@example.org>\r\n"
    b"Date: Thu, 02 Jan 2020 03:04:05 +0200\r\n"
    b"\r\n"
    b"Hello.\r\n"
)
WHEN = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))


# What each server announces after LOGIN, as observed (Debian 12 packages, these fixtures' settings).
def _words(text: str) -> set[str]:
    return set(text.upper().split())


CAPABILITIES = {
    "dovecot": _words(DOVECOT_POST_LOGIN_CAPABILITIES),
    "cyrus": _words(
        "ACL ANNOTATE-EXPERIMENT-1 APPENDLIMIT=4294967295 BINARY CATENATE CHILDREN COMPRESS=DEFLATE "
        "CONDSTORE CREATE-SPECIAL-USE DIGEST=SHA1 ENABLE ESEARCH ESORT ID IDLE IMAP4REV1 LIST-EXTENDED "
        "LIST-METADATA LIST-MYRIGHTS LIST-STATUS LITERAL+ LOGINDISABLED MAILBOX-REFERRALS METADATA MOVE "
        "MULTIAPPEND NAMESPACE NO_ATOMIC_RENAME OBJECTID PREVIEW QRESYNC QUOTA RIGHTS=KXTEN SAVEDATE SCAN "
        "SEARCH=FUZZY SORT SORT=DISPLAY SORT=MODSEQ SORT=UID SPECIAL-USE STATUS=SIZE THREAD=ORDEREDSUBJECT "
        "THREAD=REFERENCES THREAD=REFS UIDPLUS UNSELECT URLAUTH URLAUTH=BINARY WITHIN X-CREATEDMODSEQ "
        "X-QUOTA=MESSAGE X-QUOTA=STORAGE X-QUOTA=X-ANNOTATION-STORAGE X-QUOTA=X-NUM-FOLDERS X-REPLICATION "
        "X-SIEVE-MAILBOX XLIST XMOVE"
    ),
    "courier": _words(
        "ACL ACL2=UNION CHILDREN ENABLE IDLE IMAP4REV1 NAMESPACE QUOTA SORT THREAD=ORDEREDSUBJECT "
        "THREAD=REFERENCES UIDPLUS UTF8=ACCEPT"
    ),
    "mailutils": _words(
        "AUTH=ANONYMOUS AUTH=CRAM-MD5 AUTH=DIGEST-MD5 AUTH=EXTERNAL AUTH=GS2-KRB5 AUTH=GSSAPI AUTH=LOGIN "
        "AUTH=OPENID20 AUTH=PLAIN AUTH=SAML20 AUTH=SCRAM-SHA-1 AUTH=SCRAM-SHA-1-PLUS AUTH=SCRAM-SHA-256 "
        "AUTH=SCRAM-SHA-256-PLUS AUTH=SECURID ID IDLE IMAP4REV1 LITERAL+ NAMESPACE UNSELECT"
    ),
}


def _server_name(request: pytest.FixtureRequest) -> str:
    name: str = request.node.callspec.params["imap_server"]
    return name


# --- every server: the fixture gives working, separate accounts --------------------------------------


def test_a_fresh_account_logs_in_and_a_wrong_password_is_refused(server_mailbox: Mailbox) -> None:
    with server_mailbox.client() as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    wrong = Mailbox(server=server_mailbox.server, user=server_mailbox.user, password="wrong")
    with pytest.raises(imaplib.IMAP4.error), wrong.client():
        pass


def test_append_with_flags_and_a_date_reads_back(server_mailbox: Mailbox) -> None:
    uid = server_mailbox.append(RAW, flags=[b"\\Seen", b"\\Flagged"], when=WHEN)

    [stored] = server_mailbox.state()
    assert stored.uid == uid
    assert stored.flags == {b"\\Seen", b"\\Flagged"}
    assert stored.body.startswith(RAW.split(b"\r\n\r\n")[0])


def test_a_folder_of_the_personal_namespace_takes_messages(server_mailbox: Mailbox) -> None:
    archive = server_mailbox.folder("Archive")
    first = server_mailbox.append(RAW, folder=archive)
    second = server_mailbox.append(RAW, folder=archive, flags=[b"\\Answered"])

    assert second > first
    assert [m.flags for m in server_mailbox.state(archive)] == [frozenset(), {b"\\Answered"}]
    assert server_mailbox.state() == []


def test_accounts_are_separate(imap_server: LoggingServer, mailbox_on_server: Callable[..., Mailbox]) -> None:
    one, two = mailbox_on_server(imap_server), mailbox_on_server(imap_server)
    one.append(RAW)

    assert len(one.state()) == 1
    assert two.state() == []


def test_varied_seeds_read_back_with_their_flags_and_dates(
    server_mailbox: Mailbox, request: pytest.FixtureRequest
) -> None:
    """What most suite tests do: seed a folder, read its whole state back (dates here are in UTC)."""
    seeds = varied_seeds(8)
    if _server_name(request) == "mailutils":  # it refuses keywords in APPEND
        seeds = [replace(s, flags=tuple(f for f in s.flags if f.startswith(b"\\"))) for s in seeds]
    uids = server_mailbox.seed(seeds)

    state = server_mailbox.state()
    assert [m.uid for m in state] == uids
    assert [m.flags for m in state] == [frozenset(s.flags) for s in seeds]
    assert [m.internaldate for m in state] == [s.when for s in seeds]
    if _server_name(request) != "mailutils":  # it adds its own headers (see below)
        assert [m.body for m in state] == [s.raw for s in seeds]


def test_capabilities_after_login_are_as_recorded(
    server_mailbox: Mailbox, request: pytest.FixtureRequest
) -> None:
    announced = {c.decode().upper() for c in server_mailbox.capabilities()}
    assert announced == CAPABILITIES[_server_name(request)]


def test_the_server_starts_within_seconds(imap_server: LoggingServer) -> None:
    assert 0 < imap_server.startup_seconds < 10


# --- Cyrus IMAP 3.6 --------------------------------------------------------------------------------


def test_cyrus_keeps_the_instant_of_the_date_in_utc_and_the_exact_bytes(
    cyrus: CyrusServer, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    mailbox = mailbox_on_server(cyrus)
    mailbox.append(RAW, flags=[b"$Label1"], when=WHEN)

    [stored] = mailbox.state()
    assert stored.internaldate == WHEN
    assert stored.internaldate.utcoffset() == dt.timedelta(0)
    assert stored.body == RAW
    assert stored.flags == {b"$Label1"}


def _expunge_one_of_two(mailbox: Mailbox) -> None:
    first = mailbox.append(RAW)
    mailbox.append(RAW.replace(b"fixture check", b"the other"))
    with mailbox.client() as client:
        client.select_folder("INBOX")
        client.delete_messages([first])
        client.expunge()


def _spool_files(server: CyrusServer) -> list[Path]:
    """The message files under the spool (Cyrus names them "<uid>.")."""
    return [p for p in server.spool.rglob("*.") if p.name[:-1].isdigit()]


def test_cyrus_delayed_expunge_keeps_the_file_and_unexpunge_lists_it(
    cyrus: CyrusServer, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    before = len(_spool_files(cyrus))
    mailbox = mailbox_on_server(cyrus)
    _expunge_one_of_two(mailbox)

    assert [m.body for m in mailbox.state()] == [RAW.replace(b"fixture check", b"the other")]
    assert len(_spool_files(cyrus)) - before == 2
    listing = cyrus.unexpunge_list(mailbox.user)
    assert "UID: 1\n" in listing
    assert "UID: 2\n" not in listing


def test_cyrus_immediate_expunge_removes_the_file(
    cyrus_immediate: CyrusServer, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    before = len(_spool_files(cyrus_immediate))
    mailbox = mailbox_on_server(cyrus_immediate)
    _expunge_one_of_two(mailbox)

    assert len(mailbox.state()) == 1
    assert len(_spool_files(cyrus_immediate)) - before == 1
    assert "UID:" not in cyrus_immediate.unexpunge_list(mailbox.user)


def test_cyrus_special_use_attributes_and_debian_namespace() -> None:
    """Debian's imapd.conf puts folders under INBOX. with "." (the fixture uses Cyrus 3's own
    defaults); either way a special-use folder is listed as \\Trash, capitalised as sent."""
    server = start_cyrus(extra_config=DEBIAN_NAMESPACE)
    try:
        mailbox = Mailbox(server, *server.new_user())
        assert mailbox.folder("Bin") == "INBOX.Bin"
        with mailbox.client() as client:
            assert client._imap._simple_command("CREATE", "INBOX.Bin", "(USE (\\Trash))")[0] == "OK"
            assert (b"\\HasNoChildren", b"\\Trash") in [flags for flags, _, _ in client.list_folders()]
    finally:
        server.stop()


def test_cyrus_refuses_a_message_with_an_invalid_header(
    cyrus: CyrusServer, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    mailbox = mailbox_on_server(cyrus)
    with pytest.raises(imaplib.IMAP4.error, match="invalid header"):
        mailbox.append(b"Subject: fine\r\nBroken header line\r\n\r\nbody\r\n")


# --- Courier-IMAP 5.0 ------------------------------------------------------------------------------


def test_courier_shows_a_session_its_own_append_only_after_a_noop(
    request: pytest.FixtureRequest, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    mailbox = mailbox_on_server(request.getfixturevalue("courier"))
    mailbox.append(RAW)
    with mailbox.client() as client:
        client.select_folder("INBOX")
        uid = int(client.append("INBOX", RAW).split(b"]")[0].split()[-1])

        assert client.fetch([uid], ["FLAGS"]) == {}
        client.noop()
        assert list(client.fetch([uid], ["FLAGS"])) == [uid]


def test_courier_folders_live_under_inbox(
    request: pytest.FixtureRequest, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    mailbox = mailbox_on_server(request.getfixturevalue("courier"))
    assert mailbox.folder("Archive") == "INBOX.Archive"
    with mailbox.client() as client, pytest.raises(imaplib.IMAP4.error, match="Invalid mailbox name"):
        client.create_folder("Archive")


def test_courier_keeps_keywords_the_instant_in_utc_and_the_exact_bytes(
    request: pytest.FixtureRequest, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    mailbox = mailbox_on_server(request.getfixturevalue("courier"))
    mailbox.append(RAW, flags=[b"$Label1", b"\\Seen"], when=WHEN)

    [stored] = mailbox.state()
    assert stored.flags == {b"$Label1", b"\\Seen"}
    assert stored.internaldate == WHEN
    assert stored.internaldate.utcoffset() == dt.timedelta(0)
    assert stored.body == RAW


# --- GNU Mailutils imap4d 3.15 ----------------------------------------------------------------------


def _uid_search(client: IMAPClient, *criteria: str) -> list[int]:
    typ, data = client._imap.uid("SEARCH", *criteria)
    assert typ == "OK"
    return [int(n) for n in b" ".join(d for d in data if d).split()]


def test_mailutils_uid_search_of_a_uid_range_finds_nothing(
    mailutils: MailutilsServer, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    mailbox = mailbox_on_server(mailutils)
    uids = [mailbox.append(RAW), mailbox.append(RAW)]
    with mailbox.client() as client:
        client.select_folder("INBOX", readonly=True)

        assert _uid_search(client, "ALL") == uids
        assert _uid_search(client, "UID", f"{uids[0]}:{uids[1]}") == uids
        assert _uid_search(client, "UID", "1:*") == []


def test_mailutils_refuses_keywords_in_append(
    mailutils: MailutilsServer, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    mailbox = mailbox_on_server(mailutils)
    with pytest.raises(imaplib.IMAP4.error, match="Unrecognized flag"):
        mailbox.append(RAW, flags=[b"$Label1"])
    assert mailbox.state() == []


@pytest.mark.parametrize("hours", [-9.5, 2, 5.5])
def test_mailutils_keeps_the_wall_clock_of_any_zone_as_utc(
    mailutils: MailutilsServer, mailbox_on_server: Callable[..., Mailbox], hours: float
) -> None:
    """A -0930 zone is taken too (the notes said refused; not so with IMAPClient's date format)."""
    mailbox = mailbox_on_server(mailutils)
    when = WHEN.replace(tzinfo=dt.timezone(dt.timedelta(hours=hours)))
    mailbox.append(RAW, when=when)

    [stored] = mailbox.state()
    assert stored.internaldate == when.replace(tzinfo=dt.UTC)


def test_mailutils_adds_its_headers_to_the_message_it_gives_back(
    mailutils: MailutilsServer, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    mailbox = mailbox_on_server(mailutils)
    mailbox.append(RAW, flags=[b"\\Seen"], when=WHEN)

    [stored] = mailbox.state()
    # The wall-clock time is kept and the +0200 dropped: the instant moved by two hours.
    assert stored.internaldate == WHEN.replace(tzinfo=dt.UTC) != WHEN
    # The mbox bookkeeping headers are part of the message the server gives back.
    head, body = stored.body.split(b"\r\n\r\n", 1)
    assert body == b"Hello.\r\n"
    assert head.startswith(RAW.split(b"\r\n\r\n")[0] + b"\r\nX-IMAPbase: ")
    assert b"\r\nX-UID: 1\r\nStatus: R" in head


def _uidvalidity(mailbox: Mailbox) -> int:
    with mailbox.client() as client:
        validity: int = client.select_folder("INBOX")[b"UIDVALIDITY"]
        return validity


def test_mailutils_uidvalidity_is_new_each_session_while_the_folder_is_empty(
    mailutils: MailutilsServer, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    """An empty mbox has no X-IMAPbase header: each session makes a UIDVALIDITY from the clock."""
    mailbox = mailbox_on_server(mailutils)
    first = _uidvalidity(mailbox)
    wait_for(lambda: _uidvalidity(mailbox) > first, timeout=5, what="a later session's UIDVALIDITY")

    mailbox.append(RAW)
    kept = _uidvalidity(mailbox)
    with pytest.raises(TimeoutError):
        wait_for(lambda: _uidvalidity(mailbox) != kept, timeout=1.5, what="a different UIDVALIDITY")


def test_mailutils_append_without_a_date_needs_a_from_header_and_dates_by_the_date_header(
    mailutils: MailutilsServer, mailbox_on_server: Callable[..., Mailbox]
) -> None:
    """Without a date, the mbox "From " line takes the sender from From: and the date from Date:."""
    mailbox = mailbox_on_server(mailutils)
    with pytest.raises(imaplib.IMAP4.error, match="TRYCREATE"):
        mailbox.append(b"Date: Thu, 02 Jan 2020 03:04:05 +0200\r\nSubject: no sender\r\n\r\nHello.\r\n")
    mailbox.append(RAW)
    mailbox.append(b"From: alice@example.org\r\nSubject: no date\r\n\r\nHello.\r\n")

    assert [m.internaldate for m in mailbox.state()] == [WHEN, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)]


def test_mailutils_maildir_drops_flags_ignores_the_date_and_renumbers(
    mailbox_on_server: Callable[..., Mailbox],
) -> None:
    """Why the fixture keeps Mailutils' default mbox: its maildir loses what imapcrypt must keep."""
    server = start_mailutils(mailbox_type="maildir")
    try:
        mailbox = mailbox_on_server(server)
        other_date = WHEN + dt.timedelta(days=400)
        uid = mailbox.append(RAW, flags=[b"\\Seen"], when=other_date)

        [stored] = mailbox.state()
        assert stored.flags == frozenset()
        assert stored.internaldate == WHEN  # from the Date: header, not from APPEND
        assert stored.body == RAW
        assert stored.uid != uid  # the UID seen right after APPEND is not the one the next session sees
    finally:
        server.stop()


def test_fetching_unpacks_only_when_the_package_list_changed(tmp_path: Path) -> None:
    script = Path(__file__).parents[1] / "installers" / "test-servers.sh"
    for name in ("cyrus", "courier", "mailutils"):
        (tmp_path / name / "root").mkdir(parents=True)
    (tmp_path / "cyrus" / "packages").write_text("cyrus-common cyrus-imapd\n")
    (tmp_path / "courier" / "packages").write_text(
        "courier-imap courier-base courier-authlib courier-authlib-userdb courier-authdaemon "
        "libcourier-unicode4\n"
    )
    (tmp_path / "mailutils" / "packages").write_text("mailutils-imap4d libmailutils9 mailutils-common\n")

    done = subprocess.run(["sh", str(script), str(tmp_path)], capture_output=True, text=True, check=True)
    assert done.stdout == ""


@pytest.mark.slow
def test_fetching_from_cold_downloads_and_unpacks_every_server(tmp_path: Path) -> None:
    script = Path(__file__).parents[1] / "installers" / "test-servers.sh"
    subprocess.run(["sh", str(script), str(tmp_path)], capture_output=True, check=True, timeout=300)

    assert (tmp_path / "cyrus/root/usr/lib/cyrus/bin/imapd").exists()
    assert (tmp_path / "courier/root/usr/lib/courier/courier/imaplogin").exists()
    assert (tmp_path / "mailutils/root/usr/sbin/imap4d").exists()
    assert not list(tmp_path.glob("*/debs"))
