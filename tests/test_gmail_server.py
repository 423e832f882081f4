"""The Gmail double itself (tests/fixtures/gmail_server.py): pins the Gmail behaviours imapcrypt relies
on, each as Google documents it (see the fixture's docstring for the sources)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import imapclient.exceptions
import pytest
from imapclient import IMAPClient

from tests.fixtures.gmail_server import (
    GmailAccount,
    GmailServer,
    gmail_mailbox_on,
    message_with_id,
)
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.waiting import wait_for

ALL, TRASH = "[Gmail]/All Mail", "[Gmail]/Trash"


@contextmanager
def logged_in(mailbox: Mailbox) -> Iterator[IMAPClient]:
    with mailbox.client() as client:
        yield client


def account_of(mailbox: Mailbox) -> GmailAccount:
    server = mailbox.server
    assert isinstance(server, GmailServer)
    return server.account(mailbox.user)


def test_capabilities_are_gmails(gmail_mailbox: Mailbox) -> None:
    caps = gmail_mailbox.capabilities()
    for wanted in (b"X-GM-EXT-1", b"UIDPLUS", b"MOVE", b"IDLE", b"SPECIAL-USE", b"CONDSTORE", b"LITERAL-"):
        assert wanted in caps
    assert b"APPENDLIMIT=35651584" in caps
    assert b"MULTIAPPEND" not in caps
    assert b"LITERAL+" not in caps


def test_special_folders_carry_their_attributes_and_names_may_be_localised(
    gmail_mailbox: Mailbox, gmail_server_factory: type[GmailServer]
) -> None:
    with logged_in(gmail_mailbox) as client:
        listed = {name: flags for flags, _, name in client.list_folders()}
        assert client.find_special_folder(b"\\Trash") == TRASH
        assert client.find_special_folder(b"\\All") == ALL
    assert b"\\Noselect" in listed["[Gmail]"]
    german = gmail_mailbox_on(gmail_server_factory(localised=True))
    with logged_in(german) as client:
        assert client.find_special_folder(b"\\Trash") == "[Google Mail]/Papierkorb"


def test_labels_are_folders_over_one_store(gmail_mailbox: Mailbox) -> None:
    gmail_mailbox.append(message_with_id("<one@x>"))
    with logged_in(gmail_mailbox) as client:
        client.select_folder("INBOX")
        client.add_gmail_labels([1], ["Work", "\\Important"])
        inbox = client.fetch([1], ["X-GM-MSGID", "X-GM-LABELS"])[1]
        ids = {}
        for folder in ("Work", "[Gmail]/Important", ALL):
            client.select_folder(folder)
            (uid,) = client.search("ALL")
            ids[folder] = client.fetch([uid], ["X-GM-MSGID"])[uid][b"X-GM-MSGID"]
    assert set(inbox[b"X-GM-LABELS"]) == {b"\\Inbox", b"\\Important", b"Work"}
    assert set(ids.values()) == {inbox[b"X-GM-MSGID"]}
    assert len(account_of(gmail_mailbox).stored()) == 1


def test_expunge_in_a_label_folder_only_removes_the_label(gmail_mailbox: Mailbox) -> None:
    account = account_of(gmail_mailbox)
    account.auto_expunge = False
    gmail_mailbox.append(message_with_id("<two@x>"))
    with logged_in(gmail_mailbox) as client:
        client.select_folder("INBOX")
        client.add_flags([1], [b"\\Deleted"])
        assert client.search("ALL") == [1]  # auto-expunge off: still listed until EXPUNGE
        client.uid_expunge([1])
        assert client.search("ALL") == []
        client.select_folder(ALL)
        assert len(client.search("ALL")) == 1  # the plaintext is still in All Mail
    (left,) = account.in_all_mail()
    assert left.labels == frozenset()
    assert b"\\Deleted" not in left.flags


def test_auto_expunge_removes_the_label_as_soon_as_deleted_is_set(gmail_mailbox: Mailbox) -> None:
    gmail_mailbox.append(message_with_id("<three@x>"))
    with logged_in(gmail_mailbox) as client:
        client.select_folder("INBOX")
        client.add_flags([1], [b"\\Deleted"])
        assert client.search("ALL") == []
    assert len(account_of(gmail_mailbox).in_all_mail()) == 1


def test_moving_to_trash_leaves_all_mail_and_expunging_there_deletes_forever(gmail_mailbox: Mailbox) -> None:
    gmail_mailbox.append(message_with_id("<four@x>"))
    account = account_of(gmail_mailbox)
    with logged_in(gmail_mailbox) as client:
        client.select_folder("INBOX")
        client.move([1], TRASH)
        assert account.in_all_mail() == []
        assert len(account.in_trash()) == 1
        client.select_folder(TRASH)
        (uid,) = client.search("ALL")
        client.add_flags([uid], [b"\\Deleted"])
        client.uid_expunge([uid])
    assert account.stored() == []


def test_append_merges_messages_that_share_a_message_id(gmail_mailbox: Mailbox) -> None:
    account = account_of(gmail_mailbox)
    first = gmail_mailbox.append(message_with_id("<same@x>", body="one"), folder="Work")
    with logged_in(gmail_mailbox) as client:
        answer = client.append("INBOX", message_with_id("<same@x>", body="two"))
        client.select_folder("INBOX")
        (uid,) = client.search("ALL")
    assert f"APPENDUID {account.folder_states['INBOX'].uidvalidity} {uid}".encode() in answer
    assert first == 1
    (only,) = account.stored()
    assert b"one" in only.raw  # the second APPEND stored nothing; the first gained \Inbox
    assert only.labels == {"Work", "\\Inbox"}
    assert account.merges == 1


def test_a_reply_joins_its_parents_thread(gmail_mailbox: Mailbox) -> None:
    gmail_mailbox.append(message_with_id("<p@x>"))
    reply = message_with_id("<r@x>").replace(b"\r\n\r\n", b"\r\nIn-Reply-To: <p@x>\r\n\r\n", 1)
    gmail_mailbox.append(reply)
    parent, child = account_of(gmail_mailbox).stored()
    assert child.thrid == parent.thrid == parent.msgid


def test_search_by_gmail_id_and_header(gmail_mailbox: Mailbox) -> None:
    gmail_mailbox.append(message_with_id("<five@x>"))
    gmail_mailbox.append(message_with_id("<six@x>"))
    second = account_of(gmail_mailbox).stored()[1].msgid
    with logged_in(gmail_mailbox) as client:
        client.select_folder(ALL)
        assert client.search(["X-GM-MSGID", second]) == [2]
        assert client.search(["OR", "X-GM-MSGID", second, "HEADER", "Message-ID", "five@x"]) == [1, 2]
        assert client.search(["UID", "2:*"]) == [2]


def test_throttling_and_appendlimit_answer_no_with_gmails_codes(
    gmail_mailbox: Mailbox, gmail_server_factory: type[GmailServer]
) -> None:
    account_of(gmail_mailbox).throttle(1, commands=("SELECT",))
    with logged_in(gmail_mailbox) as client:
        with pytest.raises(imapclient.exceptions.IMAPClientError, match=r"\[THROTTLED\]"):
            client.select_folder("INBOX")
        client.select_folder("INBOX")  # only the next one was throttled
    small = gmail_mailbox_on(gmail_server_factory(append_limit=100))
    with logged_in(small) as client, pytest.raises(imapclient.exceptions.IMAPClientError, match="TOOBIG"):
        client.append("INBOX", message_with_id("<big@x>", body="x" * 200))


def test_too_many_connections_refuses_the_login(gmail_mailbox: Mailbox) -> None:
    account_of(gmail_mailbox).max_connections = 1
    with (
        logged_in(gmail_mailbox),
        pytest.raises(imapclient.exceptions.LoginError, match="Too many simultaneous connections"),
        logged_in(gmail_mailbox),
    ):
        pass
    # The server thread counts a connection closed once it has read the end of it, just after LOGOUT.
    wait_for(lambda: account_of(gmail_mailbox).connections == 0, timeout=10, what="both connections closed")


def test_xoauth2_accepts_a_valid_token_and_challenges_a_bad_one(gmail_mailbox: Mailbox) -> None:
    good = IMAPClient("127.0.0.1", port=gmail_mailbox.port, ssl=False, timeout=5)
    try:
        good.oauth2_login(gmail_mailbox.user, f"{gmail_mailbox.user}-token")
        assert good.folder_exists("INBOX")
    finally:
        good.logout()
    bad = IMAPClient("127.0.0.1", port=gmail_mailbox.port, ssl=False, timeout=5)
    try:
        with pytest.raises(imapclient.exceptions.LoginError, match="AUTHENTICATIONFAILED"):
            bad.oauth2_login(gmail_mailbox.user, "expired")
    finally:
        bad.shutdown()


def test_literal_minus_takes_small_non_synchronising_literals_only(gmail_mailbox: Mailbox) -> None:
    with socket.create_connection(("127.0.0.1", gmail_mailbox.port), timeout=5) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(f"a LOGIN {gmail_mailbox.user} {gmail_mailbox.password}\r\n".encode())
        assert reader.readline().startswith(b"a OK")
        small = message_with_id("<lit@x>")
        sock.sendall(b"b APPEND INBOX {%d+}\r\n" % len(small) + small + b"\r\n")
        assert reader.readline().startswith(b"b OK [APPENDUID")
        big = b"x" * 5000
        sock.sendall(b"c APPEND INBOX {5000+}\r\n" + big + b"\r\n")
        assert reader.readline().startswith(b"c BAD [TOOBIG]")


def test_idle_reports_new_mail(gmail_mailbox: Mailbox) -> None:
    with logged_in(gmail_mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        client.idle()
        gmail_mailbox.append(message_with_id("<idle@x>"))
        seen = wait_for(lambda: client.idle_check(timeout=0.2), timeout=5, what="an EXISTS while idling")
        client.idle_done()
    assert (1, b"EXISTS") in seen
