"""`imapcrypt serve` (docs/serve.md) against the real Dovecot and real GnuPG, spoken to with Python's
imaplib: what a mail client sees is the original mail, and what it does reaches the provider's copy."""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from imapcrypt.errors import ImapcryptError
from imapcrypt.message import envelope
from imapcrypt.serve.server import LOOPBACK, LocalServer, ServeSettings
from tests.fixtures.corpus import BODY_MARK, SUBJECT_MARK, Seed, varied_seeds
from tests.fixtures.engine import Rig
from tests.fixtures.proxy import FaultProxy
from tests.fixtures.waiting import wait_for

PASSWORD = "local-serve-pw"  # the test's local password: what `serve_password` would hand out


@dataclass
class Served:
    """An encrypted test mailbox and the local server in front of it."""

    rig: Rig
    seeds: list[Seed]
    server: LocalServer

    def client(self, password: str = PASSWORD) -> imaplib.IMAP4:
        """A logged-in imaplib client of the local server (the test logs out)."""
        client = imaplib.IMAP4(LOOPBACK, self.server.port, timeout=60)
        client.login(self.rig.account.name, password)
        return client

    def restart(self) -> None:
        """Stop the server and start a new one on the same port, as after a reboot."""
        port = self.server.port
        self.server.stop()
        self.server = LocalServer(self.rig.config(), PASSWORD, _settings(port)).start()


def _settings(port: int = 0) -> ServeSettings:
    return ServeSettings(port=port, poll_seconds=0.1, wrong_password_pause=0.0)


def encrypted_rig(rig: Rig, count: int) -> list[Seed]:
    """Seed `count` varied messages and let the engine encrypt them all."""
    seeds = varied_seeds(count, seed=18)
    rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX", backlog=True)
    assert report.encrypted == count
    return seeds


@pytest.fixture
def served(rig: Rig) -> Iterator[Served]:
    """Four encrypted messages behind a running local server."""
    seeds = encrypted_rig(rig, 4)
    server = LocalServer(rig.config(), PASSWORD, _settings()).start()
    holder = Served(rig, seeds, server)
    yield holder
    holder.server.stop()


def ok(answer: tuple[str, list[object]]) -> list[object]:
    """The data of an OK answer (a NO or BAD fails the test)."""
    status, data = answer
    assert status == "OK", data
    return data


def fetched(client: imaplib.IMAP4, uid: int, item: str) -> bytes:
    """The literal of one FETCH item of `uid`."""
    data = ok(client.uid("FETCH", str(uid), item))
    literal = next(part for part in data if isinstance(part, tuple))
    return bytes(literal[1])


def provider_uids(rig: Rig) -> list[int]:
    return [m.uid for m in rig.mailbox.state()]


def original_by_uid(served: Served) -> dict[int, bytes]:
    """The provider's copies, opened with the test key: UID -> original bytes."""
    gpg = served.rig.gpg
    return {m.uid: envelope.restore(m.body, gpg) for m in served.rig.mailbox.state()}


def test_a_wrong_password_or_unknown_name_is_refused(served: Served) -> None:
    for name, password in ((served.rig.account.name, "not-the-password"), ("someone-else", PASSWORD)):
        client = imaplib.IMAP4(LOOPBACK, served.server.port, timeout=30)
        with pytest.raises(imaplib.IMAP4.error, match="Invalid authentication"):
            client.login(name, password)
        client.shutdown()
    client = served.client()
    assert client.state == "AUTH"
    assert client.welcome.endswith(b"] imapcrypt serve ready")  # no DNS look-up of the machine's name
    client.logout()


def test_it_listens_on_loopback_only(served: Served) -> None:
    assert served.server.addresses == [(LOOPBACK, served.server.port)]
    # Another address of this machine (its own name's, else a loopback alias that is not 127.0.0.1)
    # finds nothing there.
    other = next(
        (
            a
            for a in {i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
            if a != LOOPBACK
        ),
        "127.0.0.2",
    )
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((other, served.server.port), timeout=5),
    ):
        pass


def test_folders_uids_and_uidvalidity_are_the_providers(served: Served) -> None:
    client = served.client()
    listing = b"\n".join(x for x in ok(client.list()) if isinstance(x, bytes))
    assert b"INBOX" in listing
    ok(client.select("INBOX"))
    uids = [int(u) for u in ok(client.uid("SEARCH", "ALL"))[0].split()]  # type: ignore[union-attr]
    assert uids == provider_uids(served.rig)
    validity = client.response("UIDVALIDITY")[1][0]
    with served.rig.mailbox.client() as direct:
        expected = direct.select_folder("INBOX")[b"UIDVALIDITY"]
    assert int(validity) == expected  # type: ignore[arg-type]
    client.logout()


def test_fetch_shows_each_encrypted_copy_as_its_original(served: Served) -> None:
    originals = original_by_uid(served)
    stored = {m.uid: m for m in served.rig.mailbox.state()}
    client = served.client()
    ok(client.select("INBOX"))
    for uid, original in originals.items():
        assert fetched(client, uid, "(BODY.PEEK[])") == original
        header_end = original.index(b"\r\n\r\n") + 4
        assert fetched(client, uid, "(BODY.PEEK[HEADER])") == original[:header_end]
        items = "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"
        meta = b" ".join(
            part if isinstance(part, bytes) else part[0] for part in ok(client.uid("FETCH", str(uid), items))
        )
        subject = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(original)["Subject"]
        assert SUBJECT_MARK in subject
        assert f'"{subject}"'.encode() in meta  # ENVELOPE carries the real subject, not "[...]"
        assert f"RFC822.SIZE {len(original)}".encode() in meta
        assert b"multipart/encrypted" not in meta.lower()  # BODYSTRUCTURE is the original's
        expected_flags = sorted(f.decode() for f in stored[uid].flags)
        flags = re.search(rb"FLAGS \(([^)]*)\)", meta)
        assert flags is not None
        assert sorted(flags.group(1).decode().split()) == expected_flags
        when = re.search(rb'INTERNALDATE "([^"]+)"', meta)
        assert when is not None
        assert (
            dt.datetime.strptime(when.group(1).decode(), "%d-%b-%Y %H:%M:%S %z") == stored[uid].internaldate
        )
    client.logout()


def test_uids_stay_the_same_across_sessions_and_a_restart(served: Served) -> None:
    def uids_and_subjects() -> list[tuple[int, bytes]]:
        client = served.client()
        ok(client.select("INBOX", readonly=True))
        data = ok(client.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        client.logout()
        return [
            (int(re.search(rb"UID (\d+)", part[0]).group(1)), part[1])  # type: ignore[union-attr]
            for part in data
            if isinstance(part, tuple)
        ]

    first = uids_and_subjects()
    assert len(first) == len(served.seeds)
    assert all(SUBJECT_MARK.encode() in subject for _, subject in first)
    assert uids_and_subjects() == first
    served.restart()
    assert uids_and_subjects() == first


def test_store_reaches_the_providers_copy(served: Served) -> None:
    uid = provider_uids(served.rig)[0]
    client = served.client()
    ok(client.select("INBOX"))
    ok(client.uid("STORE", str(uid), "+FLAGS", r"(\Flagged $Important)"))
    after = {m.uid: m.flags for m in served.rig.mailbox.state()}
    assert {b"\\Flagged", b"$Important"} <= after[uid]
    ok(client.uid("STORE", str(uid), "-FLAGS", r"(\Flagged)"))
    assert b"\\Flagged" not in {m.uid: m.flags for m in served.rig.mailbox.state()}[uid]
    client.logout()


def test_an_appended_draft_reaches_the_provider_encrypted(served: Served) -> None:
    draft = (
        b"From: me@example.net\r\nTo: friend@example.org\r\nSubject: Draft about the kiwi plan\r\n"
        b"Date: Mon, 02 Sep 2024 10:00:00 +0000\r\nMessage-ID: <draft1@example.net>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSecret draft words.\r\n"
    )
    served.rig.mailbox.append(b"From: x@example.org\r\nSubject: make\r\n\r\nx\r\n", folder="Drafts")
    client = served.client()
    ok(client.append("Drafts", r"(\Draft \Seen)", imaplib.Time2Internaldate(1725271200), draft))
    stored = served.rig.mailbox.state("Drafts")[-1]
    assert envelope.classify(stored.body) is envelope.Kind.OURS
    assert b"kiwi plan" not in stored.body
    assert b"Secret draft words" not in stored.body
    assert envelope.restore(stored.body, served.rig.gpg) == draft
    assert stored.flags == {b"\\Draft", b"\\Seen"}
    ok(client.select("Drafts"))
    assert fetched(client, stored.uid, "(BODY.PEEK[])") == draft
    client.logout()


def start_idle(client: imaplib.IMAP4) -> bytes:
    """Send IDLE (imaplib has none: spoken on its socket); the command's tag once the server idles."""
    tag = client._new_tag()
    client.send(tag + b" IDLE\r\n")
    assert client.readline().startswith(b"+")
    return tag


def next_exists(client: imaplib.IMAP4) -> bytes:
    """The next `* n EXISTS` line while idling (the client's socket timeout bounds the wait)."""
    line = client.readline()
    while b"EXISTS" not in line:
        assert line, "the server closed the connection"
        line = client.readline()
    return line.strip()


def end_idle(client: imaplib.IMAP4, tag: bytes) -> None:
    """Send DONE and read up to the IDLE command's tagged answer."""
    client.send(b"DONE\r\n")
    while not client.readline().startswith(tag):
        pass


NEW_MAIL = b"From: a@example.org\r\nSubject: new one\r\n\r\nhello\r\n"


def test_idle_announces_new_mail(served: Served) -> None:
    client = served.client()
    ok(client.select("INBOX"))
    tag = start_idle(client)
    served.rig.mailbox.append(NEW_MAIL)
    assert next_exists(client) == f"* {len(served.seeds) + 1} EXISTS".encode()
    end_idle(client, tag)
    client.logout()


def test_idle_outlives_a_provider_that_is_away_for_a_while(
    rig: Rig, fault_proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    encrypted_rig(rig, 1)
    with LocalServer(rig.at_port(fault_proxy.port).config(), PASSWORD, _settings()) as server:
        client = imaplib.IMAP4(LOOPBACK, server.port, timeout=60)
        client.login(rig.account.name, PASSWORD)
        ok(client.select("INBOX"))
        tag = start_idle(client)
        fault_proxy.set_refusing(True)
        fault_proxy.cut_all()
        wait_for(lambda: "provider is away" in caplog.text, 30, "serve to notice the provider is away")
        fault_proxy.set_refusing(False)
        rig.mailbox.append(NEW_MAIL)
        assert next_exists(client) == b"* 2 EXISTS"
        assert "provider is back" in caplog.text
        end_idle(client, tag)
        client.logout()


def test_a_copy_that_does_not_decrypt_is_shown_as_itself_with_a_note(served: Served) -> None:
    stored = served.rig.mailbox.state()[0]
    # Damage the ciphertext inside the armor: it is still marked as ours, but gpg cannot open it.
    start = stored.body.index(b"-----BEGIN PGP MESSAGE-----")
    body_line = stored.body.index(b"\r\n\r\n", start) + 4
    damaged = stored.body[:body_line] + b"AAAA" * 20 + stored.body[body_line + 80 :]
    uid = served.rig.mailbox.append(damaged, when=stored.internaldate)
    client = served.client()
    ok(client.select("INBOX"))
    shown = fetched(client, uid, "(BODY.PEEK[])")
    assert shown.startswith(b"X-Imapcrypt-Note: imapcrypt could not decrypt this message")
    assert shown.endswith(damaged)
    # The server is still there for the next command.
    assert fetched(client, stored.uid, "(BODY.PEEK[])") == envelope.restore(stored.body, served.rig.gpg)
    client.logout()


def test_move_copy_and_expunge_act_on_the_providers_copies(served: Served) -> None:
    first, second, third, *_ = provider_uids(served.rig)
    bodies = {m.uid: m.body for m in served.rig.mailbox.state()}
    served.rig.mailbox.append(b"From: x@example.org\r\nSubject: make\r\n\r\nx\r\n", folder="Archive")
    client = served.client()
    ok(client.select("INBOX"))
    ok(client.uid("MOVE", str(first), "Archive"))
    ok(client.uid("COPY", str(second), "Archive"))
    ok(client.uid("STORE", str(third), "+FLAGS.SILENT", r"(\Deleted)"))
    ok(client.expunge())
    inbox = {m.uid: m.body for m in served.rig.mailbox.state()}
    archive = [m.body for m in served.rig.mailbox.state("Archive")]
    assert first not in inbox
    assert third not in inbox
    assert inbox[second] == bodies[second]
    # What moved and was copied is the encrypted copy itself, byte for byte: nothing was decrypted.
    assert bodies[first] in archive
    assert bodies[second] in archive
    # The client's own view follows: the moved and expunged messages are gone from INBOX.
    uids = [int(u) for u in ok(client.uid("SEARCH", "ALL"))[0].split()]  # type: ignore[union-attr]
    assert uids == sorted(inbox)
    client.logout()


def test_search_finds_words_in_decrypted_subjects_and_bodies(served: Served) -> None:
    originals = original_by_uid(served)
    by_index = {
        int(re.search(rb"Zebra (\d+)", raw).group(1)): uid  # type: ignore[union-attr]
        for uid, raw in originals.items()
    }
    client = served.client()
    ok(client.select("INBOX"))

    def search(*criteria: str) -> list[int]:
        return [int(u) for u in ok(client.uid("SEARCH", *criteria))[0].split()]  # type: ignore[union-attr]

    assert search("SUBJECT", f'"{SUBJECT_MARK} 2"') == [by_index[2]]
    assert search("BODY", '"number 1."') == [by_index[1]]
    assert search("FROM", '"sender3@example.org"') == [by_index[3]]
    assert search("TEXT", '"kiwi-mango"') == sorted(originals)
    assert search("SUBJECT", '"[...]"') == []  # the provider's outer subject is never what is searched
    client.logout()


def test_fetching_a_body_marks_the_providers_copy_seen(served: Served) -> None:
    unseen = [m.uid for m in served.rig.mailbox.state() if b"\\Seen" not in m.flags]
    if not unseen:
        served.rig.mailbox.append(b"From: a@example.org\r\nSubject: unread\r\n\r\nhello\r\n")
        unseen = [m.uid for m in served.rig.mailbox.state() if b"\\Seen" not in m.flags]
    client = served.client()
    ok(client.select("INBOX"))
    fetched(client, unseen[0], "(BODY[])")  # not PEEK: reading it marks it read
    assert b"\\Seen" in {m.uid: m.flags for m in served.rig.mailbox.state()}[unseen[0]]
    client.logout()


def test_a_dropped_provider_connection_is_opened_again(rig: Rig, fault_proxy: FaultProxy) -> None:
    encrypted_rig(rig, 2)
    behind = rig.at_port(fault_proxy.port)
    with LocalServer(behind.config(), PASSWORD, _settings()) as server:
        client = imaplib.IMAP4(LOOPBACK, server.port, timeout=60)
        client.login(rig.account.name, PASSWORD)
        ok(client.select("INBOX"))
        opened = fault_proxy.connections_accepted
        assert fault_proxy.cut_all() >= 1  # the provider drops the connection (an idle timeout, say)
        uids = [int(u) for u in ok(client.uid("SEARCH", "ALL"))[0].split()]  # type: ignore[union-attr]
        assert uids == provider_uids(rig)
        assert SUBJECT_MARK.encode() in fetched(client, uids[0], "(BODY.PEEK[])")
        assert fault_proxy.connections_accepted == opened + 1  # one new provider connection, no more
        client.logout()


def test_starttls_offers_tls_with_the_local_certificate(rig: Rig) -> None:
    encrypted_rig(rig, 1)
    settings = ServeSettings(port=0, poll_seconds=0.1, wrong_password_pause=0.0, starttls=True)
    with LocalServer(rig.config(), PASSWORD, settings) as server:
        cert = rig.data_dir / "serve-tls.pem"
        assert (rig.data_dir / "serve-tls.key").stat().st_mode & 0o777 == 0o600
        client = imaplib.IMAP4(LOOPBACK, server.port, timeout=60)
        assert "STARTTLS" in client.capabilities
        ok(client.starttls(ssl.create_default_context(cafile=str(cert))))  # verified: name and chain
        client.login(rig.account.name, PASSWORD)
        ok(client.select("INBOX"))
        client.logout()
        # On loopback pymap also lets a client log in without TLS: STARTTLS is for clients that insist.
        plain = served_login(server.port, rig.account.name)
        plain.logout()


def served_login(port: int, name: str) -> imaplib.IMAP4:
    """A client logged in without TLS."""
    client = imaplib.IMAP4(LOOPBACK, port, timeout=60)
    client.login(name, PASSWORD)
    return client


def test_nothing_secret_is_logged_even_at_debug(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = served.client()
    ok(client.select("INBOX"))
    for uid in provider_uids(served.rig):
        assert BODY_MARK.encode() in fetched(client, uid, "(BODY.PEEK[])")
    ok(client.append("INBOX", None, None, NEW_MAIL))
    client.logout()
    assert caplog.records  # something was logged: the test looks at real output
    for secret in (PASSWORD, SUBJECT_MARK, BODY_MARK, "new one", "hello"):
        assert secret not in caplog.text


def test_a_message_the_daemon_encrypts_meanwhile_reads_the_same(served: Served) -> None:
    plain = b"From: a@example.org\r\nSubject: plain for now\r\nMessage-ID: <p1@example.org>\r\n\r\nwords\r\n"
    old = served.rig.mailbox.append(plain, flags=[b"\\Flagged"])
    client = served.client()
    ok(client.select("INBOX"))
    assert fetched(client, old, "(BODY.PEEK[])") == plain
    with served.rig.engine() as engine:  # the daemon's pass: the plaintext becomes an encrypted copy
        assert engine.encrypt_folder("INBOX").encrypted == 1
    ok(client.noop())
    uids = [int(u) for u in ok(client.uid("SEARCH", "ALL"))[0].split()]  # type: ignore[union-attr]
    assert old not in uids
    new = uids[-1]
    assert new > old
    assert fetched(client, new, "(BODY.PEEK[])") == plain
    assert b"\\Flagged" in fetched_flags(client, new)
    client.logout()


def fetched_flags(client: imaplib.IMAP4, uid: int) -> bytes:
    """The FLAGS item of `uid`'s FETCH answer."""
    data = ok(client.uid("FETCH", str(uid), "(FLAGS)"))
    return b" ".join(part for part in data if isinstance(part, bytes))


def test_list_carries_the_providers_special_use_folders(served: Served) -> None:
    with served.rig.mailbox.client() as direct:
        expected = {
            name: {f for f in flags if f in (b"\\Sent", b"\\Trash", b"\\Drafts", b"\\Junk")}
            for flags, _, name in direct.list_folders()
        }
    assert any(expected.values())  # the test Dovecot has some: the test checks something
    client = served.client()
    assert b"SPECIAL-USE" in ok(client.capability())[0]  # type: ignore[operator]
    lines = [x for x in ok(client.list()) if isinstance(x, bytes)]
    client.logout()
    for name, uses in expected.items():
        line = next(
            line for line in lines if line.endswith(f'"{name}"'.encode()) or line.endswith(name.encode())
        )
        assert {u for u in (b"\\Sent", b"\\Trash", b"\\Drafts", b"\\Junk") if u in line} == uses, line


def test_a_port_in_use_is_refused_with_the_fix(served: Served) -> None:
    second = LocalServer(served.rig.config(), PASSWORD, _settings(served.server.port))
    with pytest.raises(ImapcryptError, match="did not start") as refused:
        second.start()
    assert "--port" in refused.value.fix
    # The first server is unharmed.
    client = served.client()
    client.logout()


def parenthesised(answer: bytes, item: str) -> bytes:
    """The parenthesised value of FETCH item `item` in one answer line (quoted strings skipped)."""
    start = answer.index(item.encode() + b" (") + len(item) + 1
    depth, quoted, escaped = 0, False, False
    for end in range(start, len(answer)):
        char = answer[end : end + 1]
        if quoted:
            quoted, escaped = (not (char == b'"' and not escaped)), (char == b"\\" and not escaped)
        elif char == b'"':
            quoted = True
        elif char in b"()":
            depth += 1 if char == b"(" else -1
            if depth == 0:
                return answer[start : end + 1]
    raise AssertionError(answer)


@pytest.mark.parametrize("kind", [b"text/plain", b"multipart/mixed"])
def test_bodystructure_is_what_dovecot_gives_for_the_original(served: Served, kind: bytes) -> None:
    seeds = [s.raw for s in varied_seeds(12, seed=4)]
    original = next(raw for raw in seeds if b"Content-Type: " + kind in raw)
    uid = served.rig.mailbox.append(original)
    with served.rig.engine() as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 1
    uid = max(provider_uids(served.rig))
    served.rig.mailbox.append(original, folder="Plain")  # the same original, stored as itself
    direct = imaplib.IMAP4(LOOPBACK, served.rig.mailbox.port, timeout=60)
    direct.login(served.rig.mailbox.user, served.rig.mailbox.password)
    ok(direct.select("Plain"))
    expected = parenthesised(ok(direct.fetch("1", "(BODYSTRUCTURE)"))[0], "BODYSTRUCTURE")  # type: ignore[arg-type]
    direct.logout()
    client = served.client()
    ok(client.select("INBOX"))
    got = parenthesised(ok(client.uid("FETCH", str(uid), "(BODYSTRUCTURE)"))[0], "BODYSTRUCTURE")  # type: ignore[arg-type]
    client.logout()
    assert re.search(rb'"7BIT" \d+ \d+', got.upper())  # the body's size and lines are in it
    # serve gives no disposition (NIL: pymap's own form is not RFC 3501's); all the rest is Dovecot's.
    without_disposition = re.sub(rb'\("(?:ATTACHMENT|INLINE)" (?:\([^)]*\)|NIL)\)', b"NIL", expected.upper())
    assert got.upper() == without_disposition


ENCODED = (
    b'From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\nTo: a@example.net, "B, C" <b@example.net>\r\n'
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and more\r\nDate: Mon, 2 Sep 2024 10:00:00 +0200\r\n"
    b"Message-ID: <x1@example.org>\r\nIn-Reply-To: <x0@example.org>\r\nReply-To: r@example.org\r\n"
    b"\r\nbody\r\n"
)


def test_envelope_is_what_dovecot_gives_for_the_original(served: Served) -> None:
    served.rig.mailbox.append(ENCODED)
    with served.rig.engine() as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 1
    uid = max(provider_uids(served.rig))
    served.rig.mailbox.append(ENCODED, folder="Plain")
    direct = imaplib.IMAP4(LOOPBACK, served.rig.mailbox.port, timeout=60)
    direct.login(served.rig.mailbox.user, served.rig.mailbox.password)
    ok(direct.select("Plain"))
    expected = ok(direct.fetch("1", "(ENVELOPE)"))[0]
    direct.logout()
    client = served.client()
    ok(client.select("INBOX"))
    got = ok(client.uid("FETCH", str(uid), "(ENVELOPE)"))[0]
    client.logout()
    assert isinstance(got, bytes)  # one line: no 8-bit literal, the subject still MIME-encoded
    assert isinstance(expected, bytes)

    def envelope_of(line: bytes) -> bytes:
        return re.sub(rb"\) \(", b")(", parenthesised(line, "ENVELOPE"))

    assert envelope_of(got) == envelope_of(expected)


def test_create_rename_and_delete_a_folder_at_the_provider(served: Served) -> None:
    client = served.client()
    ok(client.create("Projects"))
    with served.rig.mailbox.client() as direct:
        assert direct.folder_exists("Projects")
    ok(client.rename("Projects", "Archive2"))
    ok(client.select("Archive2"))
    ok(client.close())
    ok(client.delete("Archive2"))
    with served.rig.mailbox.client() as direct:
        assert not direct.folder_exists("Projects")
        assert not direct.folder_exists("Archive2")
    client.logout()
