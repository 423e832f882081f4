"""`imapcrypt demo`: the whole flow on the embedded pymap server, headless, with its report."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imapcrypt.demo import EmbeddedServer, sample_messages
from imapcrypt.message import envelope


@pytest.mark.slow
def test_demo_runs_to_completion_headless() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "imapcrypt", "demo", "--messages", "8"],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "in-memory IMAP server (pymap) on 127.0.0.1:" in out
    assert "dry run: up to 8 would be encrypted" in out
    assert "existing mail: 7 encrypted" in out
    assert "the next pass encrypted 1" in out
    assert "9 messages: 8 encrypted by imapcrypt, 1 encrypted by their sender, 0 plaintext" in out
    assert "holds exactly the mail that arrived, byte for byte" in out
    assert "are removed" in out
    assert "Just arrived: are you free?" in out  # a subject decrypted from its header


def test_embedded_server_offers_what_the_engine_uses() -> None:
    with EmbeddedServer() as server:
        client = server.client()
        try:
            capabilities = set(client.capabilities())
            assert {b"UIDPLUS", b"MOVE", b"IDLE", b"MULTIAPPEND", b"LITERAL+"} <= capabilities
        finally:
            client.logout()
        server.deliver(sample_messages(6))
        client = server.client()
        try:
            client.select_folder("INBOX")
            uids = client.search(["HEADER", "Message-ID", "demo3@imapcrypt.invalid"])
            assert len(uids) == 1
            bodies = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
        finally:
            client.logout()
    kinds = [envelope.classify(item[b"BODY[]"]) for item in bodies.values()]
    assert kinds.count(envelope.Kind.PGP_MIME) == 1
    assert kinds.count(envelope.Kind.PLAINTEXT) == 5
