"""A real mail client through `imapcrypt serve`: neomutt, driven headless in tmux, on the real Dovecot.

It lists a folder of encrypted mail with the real subjects, opens a message, searches for words in the
bodies (server-side SEARCH), flags, moves and deletes
(each change lands on the provider's encrypted copy) and postpones a draft (it arrives encrypted).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapcrypt.message import envelope
from imapcrypt.serve.server import LocalServer, ServeSettings
from tests.fixtures.corpus import BODY_MARK, SUBJECT_MARK
from tests.fixtures.engine import Rig
from tests.fixtures.tmux import Terminal, terminal
from tests.fixtures.waiting import wait_for
from tests.test_serve import PASSWORD, encrypted_rig

pytestmark = pytest.mark.skipif(shutil.which("neomutt") is None, reason="neomutt is not installed")


def muttrc(home: Path, port: int, account: str) -> Path:
    """A neomutt configuration for the local server: no caches on disk, subjects in the index."""
    path = home / "muttrc"
    path.write_text(
        f'set folder = "imap://{account}@127.0.0.1:{port}/"\n'
        'set spoolfile = "+INBOX"\n'
        'set postponed = "+Drafts"\n'
        'set record = ""\n'
        f'set imap_pass = "{PASSWORD}"\n'
        "set ssl_starttls = no\nset ssl_force_tls = no\n"
        # Nothing decrypted on disk: no header or body cache.
        'set header_cache = ""\nset message_cachedir = ""\n'
        'set index_format = "%4C %-10.10F %s"\nset sort = "date"\n'
        "set confirmappend = no\nset delete = yes\nset move = no\nset mark_old = no\nset resolve = no\n"
        "set beep = no\nset wait_key = no\nset sleep_time = 0\nset timeout = 1\nset mail_check = 1\n"
        'set editor = "true"\nset edit_headers = no\nset autoedit = no\nset fast_reply = yes\n'
        'set from = "me@example.net"\nset postpone = yes\nset abort_unmodified = no\nset recall = no\n'
    )
    return path


@pytest.fixture
def mutt(rig: Rig, tmp_path: Path) -> Iterator[tuple[Terminal, Rig]]:
    """neomutt showing INBOX (four encrypted messages) through a running local server."""
    encrypted_rig(rig, 4)
    for folder in ("Archive", "Drafts"):  # neomutt would ask before creating them
        rig.mailbox.append(b"From: x@example.org\r\nSubject: placeholder\r\n\r\nx\r\n", folder=folder)
    home = tmp_path / "home"
    home.mkdir()
    with LocalServer(rig.config(), PASSWORD, ServeSettings(port=0, poll_seconds=0.2)) as server:
        rc = muttrc(home, server.port, rig.account.name)
        env = {"HOME": str(home), "TERM": "xterm-256color", "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"}
        with terminal(["neomutt", "-n", "-F", str(rc)], env) as screen:
            yield screen, rig


def test_neomutt_lists_real_subjects_and_opens_a_message(mutt: tuple[Terminal, Rig]) -> None:
    screen, rig = mutt
    shown = screen.wait_for_text(f"{SUBJECT_MARK} 3")
    for index in range(4):
        assert f"{SUBJECT_MARK} {index}" in shown
    assert "[...]" not in shown
    screen.keys("Enter")
    screen.wait_for_text(BODY_MARK)
    screen.keys("q")
    screen.wait_for_text(f"{SUBJECT_MARK} 0")
    # A server-side body search (neomutt's =b sends SEARCH BODY): only the message with the words stays.
    screen.keys("l")
    screen.wait_for_text("Limit to messages matching")
    screen.keys("=b 'number 2.'", "Enter")
    limited = screen.wait_for_screen(lambda shown: f"{SUBJECT_MARK} 0" not in shown, "the limited list")
    assert f"{SUBJECT_MARK} 2" in limited
    for other in (1, 3):
        assert f"{SUBJECT_MARK} {other}" not in limited
    # On the provider everything is still encrypted: no subject in the clear.
    assert all(envelope.classify(m.body) is envelope.Kind.OURS for m in rig.mailbox.state())


def _flags(rig: Rig) -> dict[int, frozenset[bytes]]:
    return {m.uid: m.flags for m in rig.mailbox.state()}


def test_neomutt_flags_moves_deletes_and_postpones_on_the_providers_copies(
    mutt: tuple[Terminal, Rig],
) -> None:
    screen, rig = mutt
    screen.wait_for_text(f"{SUBJECT_MARK} 3")
    before = _flags(rig)
    screen.keys("F", "$")  # flag the message under the cursor; sync (neomutt keeps changes until then)
    flagged = wait_for(
        lambda: [u for u, f in _flags(rig).items() if b"\\Flagged" in f and b"\\Flagged" not in before[u]],
        30,
        "a message flagged at the provider",
        interval=0.2,
    )
    assert len(flagged) == 1
    screen.keys("s")  # save (move) it to another folder
    screen.wait_for_text("Save to mailbox")
    screen.keys("=Archive", "Enter")
    screen.keys("j", "d", "$")  # delete the next one and sync
    wait_for(lambda: len(rig.mailbox.state()) == 2, 30, "INBOX down to two messages at the provider", 0.2)
    archive = rig.mailbox.state("Archive")
    moved = [m for m in archive if envelope.classify(m.body) is envelope.Kind.OURS]
    assert len(moved) == 1
    assert b"\\Flagged" in moved[0].flags
    assert SUBJECT_MARK.encode() in envelope.restore(moved[0].body, rig.gpg)
    # Compose a draft and postpone it: it reaches the provider's Drafts encrypted.
    screen.keys("m")
    screen.wait_for_text("To:")
    screen.keys("friend@example.org", "Enter")
    screen.wait_for_text("Subject:")
    screen.keys("Plans for the kiwi harvest", "Enter")
    screen.wait_for_text("friend@example.org")
    screen.keys("P")
    drafts = wait_for(
        lambda: [m for m in rig.mailbox.state("Drafts") if envelope.classify(m.body) is envelope.Kind.OURS],
        30,
        "the postponed draft at the provider",
        interval=0.2,
    )
    assert b"kiwi harvest" not in drafts[0].body
    assert b"Subject: Plans for the kiwi harvest" in envelope.restore(drafts[0].body, rig.gpg)
