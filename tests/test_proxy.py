"""The fault-injecting proxy against the real Dovecot: cuts land where asked, bytes pass unchanged."""

from __future__ import annotations

import imaplib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from imapclient import IMAPClient

from tests.fixtures.dovecot import DovecotServer
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.proxy import FaultProxy, client_through
from tests.fixtures.tls import TlsDovecot

# What a client sees when the proxy resets its connection mid-command.
CONNECTION_LOST = (OSError, imaplib.IMAP4.abort)


def _message(number: int, filler: bytes = b"") -> bytes:
    return (
        f"From: a@example.org\r\nTo: b@example.org\r\nSubject: message {number}\r\n"
        f"Message-ID: <{number}@example.org>\r\n\r\nbody {number}\r\n".encode()
        + filler
    )


class RawImap:
    """A hand-driven IMAP connection: exact bytes and tags, for framing cases imapclient hides."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")
        self.greeting = self.reader.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.reader.readline()

    def response(self, tag: bytes) -> bytes:
        """Everything up to and including the tagged line for `tag`, literals included."""
        received = b""
        while True:
            line = self.line()
            if not line:
                raise ConnectionError(f"connection closed before {tag!r} completed: {received[-200:]!r}")
            received += line
            literal = re.search(rb"\{(\d+)\}\r\n\Z", line)
            if literal:
                received += self.reader.read(int(literal[1]))
            elif line.startswith(tag + b" "):
                return received

    def command(self, tag: bytes, text: bytes) -> bytes:
        self.send(tag + b" " + text + b"\r\n")
        return self.response(tag)

    def login(self, mailbox: Mailbox) -> None:
        done = self.command(b"L1", f"LOGIN {mailbox.user} {mailbox.password}".encode())
        assert b"L1 OK" in done

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@contextmanager
def raw_through(proxy: FaultProxy, mailbox: Mailbox) -> Iterator[RawImap]:
    raw = RawImap(proxy.port)
    try:
        raw.login(mailbox)
        yield raw
    finally:
        raw.close()


def _lost_connection(raw: RawImap) -> bool:
    """True once the peer reset or closed the connection (reading gives nothing more)."""
    try:
        return raw.line() == b""
    except ConnectionResetError:
        return True


def test_cut_after_second_append_server_keeps_both(fault_proxy: FaultProxy, mailbox: Mailbox) -> None:
    fault_proxy.cut_after("APPEND", 2)
    with client_through(fault_proxy, mailbox) as client:
        client.append("INBOX", _message(1))
        with pytest.raises(CONNECTION_LOST):
            client.append("INBOX", _message(2))
    assert fault_proxy.cuts_done == 1
    assert fault_proxy.count("APPEND") == 2
    assert not fault_proxy.armed
    assert [m.body for m in mailbox.state()] == [_message(1), _message(2)]


def test_cut_before_second_append_server_holds_one(fault_proxy: FaultProxy, mailbox: Mailbox) -> None:
    fault_proxy.cut_before("APPEND", 2)
    with client_through(fault_proxy, mailbox) as client:
        client.append("INBOX", _message(1))
        with pytest.raises(CONNECTION_LOST):
            client.append("INBOX", _message(2))
    assert fault_proxy.cuts_done == 1
    assert fault_proxy.count("APPEND") == 1
    assert [m.body for m in mailbox.state()] == [_message(1)]


def test_nth_command_is_counted_across_connections_from_arming(
    fault_proxy: FaultProxy, mailbox: Mailbox
) -> None:
    with client_through(fault_proxy, mailbox) as before_arming:
        before_arming.append("INBOX", _message(0))
    fault_proxy.cut_after("APPEND", 3)
    with client_through(fault_proxy, mailbox) as first, client_through(fault_proxy, mailbox) as second:
        first.append("INBOX", _message(1))
        first.append("INBOX", _message(2))
        with pytest.raises(CONNECTION_LOST):
            second.append("INBOX", _message(3))
        first.noop()  # the other connection is untouched
    assert fault_proxy.count("APPEND") == 4
    assert len(mailbox.state()) == 4


def test_uid_commands_are_named_and_cut_after_expunge(fault_proxy: FaultProxy, mailbox: Mailbox) -> None:
    uid = mailbox.append(_message(1))
    fault_proxy.cut_after("uid  expunge", 1)  # names are normalised: case and spacing
    with client_through(fault_proxy, mailbox) as client:
        client.select_folder("INBOX")
        client.fetch([uid], ["FLAGS"])
        client.add_flags([uid], [b"\\Deleted"], silent=True)
        with pytest.raises(CONNECTION_LOST):
            client.uid_expunge([uid])
    counts = fault_proxy.counts()
    assert {k: counts[k] for k in ("LOGIN", "SELECT", "UID FETCH", "UID STORE", "UID EXPUNGE")} == {
        "LOGIN": 1,
        "SELECT": 1,
        "UID FETCH": 1,
        "UID STORE": 1,
        "UID EXPUNGE": 1,
    }
    assert "FETCH" not in counts
    assert mailbox.state() == []  # the server expunged; the client never heard


def test_large_fetch_passes_intact(fault_proxy: FaultProxy, mailbox: Mailbox) -> None:
    # Every byte value Dovecot serves unchanged (it turns NUL into 0x80 and a bare LF into CRLF).
    line = bytes(b for b in range(1, 256) if b not in b"\r\n") + b"\r\n"
    body = _message(1, filler=line * 8300)
    assert len(body) > 2 * 1024 * 1024
    uid = mailbox.append(body)
    with client_through(fault_proxy, mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch([uid], ["BODY.PEEK[]"])
    assert fetched[uid][b"BODY[]"] == body


def test_lines_inside_a_response_literal_are_not_responses(fault_proxy: FaultProxy, mailbox: Mailbox) -> None:
    # The body holds what would be our FETCH's tagged completion, and a fake literal announcement:
    # a proxy reading them as lines would cut mid-literal or lose track of the stream.
    body = _message(
        1, filler=b"F1 OK fake completion\r\n* 2 FETCH (BODY[] {10}\r\n" + b"x" * 2_000_000 + b"\r\n"
    )
    mailbox.append(body)
    fault_proxy.cut_after("UID FETCH", 1)
    with raw_through(fault_proxy, mailbox) as raw:
        assert b"S1 OK" in raw.command(b"S1", b"SELECT INBOX")
        raw.send(b"F1 UID FETCH 1 (BODY.PEEK[])\r\n")
        announcement = raw.line()
        size = int(re.search(rb"\{(\d+)\}\r\n\Z", announcement)[1])  # type: ignore[index]
        assert raw.reader.read(size) == body
        assert raw.line() == b")\r\n"
        assert _lost_connection(raw)  # and the real "F1 OK" never came
    assert fault_proxy.cuts_done == 1


def test_commands_with_literals_are_counted(fault_proxy: FaultProxy, mailbox: Mailbox) -> None:
    tricky = _message(1, filler=b"A9 APPEND INBOX {5}\r\nA8 NOOP\r\n")
    plus = _message(2, filler=b"{7+}\r\n")
    multi = [_message(3), _message(4)]
    with raw_through(fault_proxy, mailbox) as raw:
        # A synchronising literal: the client waits for the server's "+" before sending it.
        raw.send(b"A2 APPEND INBOX {%d}\r\n" % len(tricky))
        assert raw.line().startswith(b"+ ")
        raw.send(tricky + b"\r\n")
        assert b"A2 OK" in raw.response(b"A2")
        # LITERAL+ and MULTIAPPEND: several literals in one command, no round trips.
        raw.send(b"A3 APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n" % (len(plus), plus))
        raw.send(
            b"A4 APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n"
            % (len(multi[0]), multi[0], len(multi[1]), multi[1])
        )
        assert b"A3 OK" in raw.response(b"A3")
        assert b"A4 OK" in raw.response(b"A4")
        # A synchronising literal the server refuses up front: the client never sends its bytes.
        raw.send(b"A5 APPEND NoSuchFolder {5}\r\n")
        assert raw.response(b"A5").startswith(b"A5 NO")
        assert b"A6 OK" in raw.command(b"A6", b"NOOP")
    assert fault_proxy.counts() == {"LOGIN": 1, "APPEND": 4, "NOOP": 1}
    assert [m.body for m in mailbox.state()] == [tricky, plus, *multi]


def test_cut_before_waits_for_pipelined_commands_already_sent(
    fault_proxy: FaultProxy, mailbox: Mailbox
) -> None:
    first, second = _message(1), _message(2)
    fault_proxy.cut_before("APPEND", 2)
    with raw_through(fault_proxy, mailbox) as raw:
        raw.send(
            b"P1 NOOP\r\nP2 APPEND INBOX {%d+}\r\n%s\r\nP3 APPEND INBOX {%d+}\r\n%s\r\nP4 NOOP\r\n"
            % (len(first), first, len(second), second)
        )
        assert b"P1 OK" in raw.response(b"P1")
        assert b"P2 OK" in raw.response(b"P2")  # answered before the cut, and readable after it
        assert _lost_connection(raw)
    assert fault_proxy.counts() == {"LOGIN": 1, "NOOP": 1, "APPEND": 1}
    assert [m.body for m in mailbox.state()] == [first]


def test_latency_delays_each_direction(fault_proxy: FaultProxy, mailbox: Mailbox) -> None:
    latency = 0.05
    with client_through(fault_proxy, mailbox) as client:
        fault_proxy.set_latency(latency)
        round_trips = []
        for _ in range(3):
            started = time.monotonic()
            client.noop()
            round_trips.append(time.monotonic() - started)
        fault_proxy.set_latency(0)
        client.noop()
    assert min(round_trips) >= 2 * latency


def test_idle_passes_through_and_cut_all_ends_it(fault_proxy: FaultProxy, mailbox: Mailbox) -> None:
    with client_through(fault_proxy, mailbox) as client:
        client.select_folder("INBOX")
        client.idle()
        mailbox.append(_message(1))  # directly, not through the proxy
        assert (1, b"EXISTS") in client.idle_check(timeout=10)
        client.idle_done()
        client.noop()
        assert fault_proxy.counts().get("DONE") is None  # the line ending IDLE is not a command
        assert fault_proxy.count("NOOP") == 1

        client.idle()
        assert fault_proxy.cut_all() == 1
        with pytest.raises(CONNECTION_LOST):
            client.idle_done()
    assert fault_proxy.count("IDLE") == 2
    assert fault_proxy.active_connections == 0
    assert fault_proxy.cuts_done == 0  # only armed cuts count there


def test_refusing_fails_new_connections_and_keeps_open_ones(
    fault_proxy: FaultProxy, mailbox: Mailbox
) -> None:
    with client_through(fault_proxy, mailbox) as open_before:
        fault_proxy.set_refusing(True)
        with pytest.raises(ConnectionRefusedError):
            IMAPClient("127.0.0.1", port=fault_proxy.port, ssl=False, timeout=5)
        open_before.noop()
        fault_proxy.set_refusing(False)
        with client_through(fault_proxy, mailbox) as after:
            after.noop()
    assert fault_proxy.connections_accepted == 2


def test_stop_resets_connections_and_leaves_no_thread(
    dovecot_port_proxy: FaultProxy, mailbox: Mailbox
) -> None:
    proxy = dovecot_port_proxy
    with client_through(proxy, mailbox) as client:
        client.noop()
        thread_names = {t.name for t in threading.enumerate()}
        assert f"fault-proxy-{proxy.port}" in thread_names
        proxy.stop()
        with pytest.raises(CONNECTION_LOST):
            client.noop()
    assert f"fault-proxy-{proxy.port}" not in {t.name for t in threading.enumerate()}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
    proxy.stop()  # a second stop is harmless


@pytest.fixture
def dovecot_port_proxy(mailbox: Mailbox) -> Iterator[FaultProxy]:
    """A proxy the test itself stops (the fixture only makes sure it is stopped)."""
    proxy = FaultProxy(mailbox.port).start()
    yield proxy
    proxy.stop()


def test_tls_passes_through_unread(
    fault_proxy_factory: Callable[[int], FaultProxy],
    tls_dovecot: TlsDovecot,
    mailbox_on: Callable[[DovecotServer], Mailbox],
) -> None:
    mailbox = mailbox_on(tls_dovecot.server)
    implicit = fault_proxy_factory(tls_dovecot.tls_port)
    client = IMAPClient(
        "127.0.0.1", port=implicit.port, ssl=True, ssl_context=tls_dovecot.trusting_context(), timeout=10
    )
    client.login(mailbox.user, mailbox.password)
    client.noop()
    assert implicit.counts() == {}  # nothing readable, so nothing counted (or misread)
    assert implicit.cut_all() == 1
    with pytest.raises(CONNECTION_LOST):
        client.noop()
    client.shutdown()

    starttls = fault_proxy_factory(tls_dovecot.starttls_port)
    with IMAPClient("127.0.0.1", port=starttls.port, ssl=False, timeout=10) as upgraded:
        upgraded.starttls(tls_dovecot.trusting_context())
        upgraded.login(mailbox.user, mailbox.password)
        upgraded.noop()
    # Commands before the upgrade are read; after it, LOGIN and NOOP travel encrypted and unread.
    assert starttls.count("STARTTLS") == 1
    assert set(starttls.counts()) <= {"CAPABILITY", "STARTTLS"}


def test_rewrite_appends_changes_what_the_server_stores_and_nothing_else(
    fault_proxy: FaultProxy, mailbox: Mailbox
) -> None:
    big = _message(2, filler=b"x" * 600_000)  # arrives in several reads: rewritten whole all the same
    fault_proxy.rewrite_appends(lambda message: message.replace(b"body", b"BODY"))
    with client_through(fault_proxy, mailbox) as client:
        client.append("INBOX", _message(1))
        client.append("INBOX", big)
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
    fault_proxy.rewrite_appends(None)
    stored = [data[b"BODY[]"] for _, data in sorted(fetched.items())]
    assert stored == [_message(1).replace(b"body", b"BODY"), big.replace(b"body", b"BODY")]


def test_rewrite_responses_makes_the_size_lie(fault_proxy: FaultProxy, mailbox: Mailbox) -> None:
    uid = mailbox.append(_message(1))
    fault_proxy.rewrite_responses(lambda line: line.replace(b"RFC822.SIZE ", b"RFC822.SIZE 9"))
    with client_through(fault_proxy, mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch([uid], ["RFC822.SIZE", "BODY.PEEK[]"])
    assert fetched[uid][b"RFC822.SIZE"] == int(b"9%d" % len(_message(1)))
    assert fetched[uid][b"BODY[]"] == _message(1)  # literal bytes are never rewritten
