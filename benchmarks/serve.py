"""Opening a folder through `imapcrypt serve`: SELECT, then FETCH (UID FLAGS ENVELOPE) of every message.

Seeds N messages into a fresh Dovecot account, lets the engine encrypt them, and times, side by side:
  - direct:     the same commands straight to Dovecot (subjects are "[...]": the floor, nothing decrypted)
  - serve-cold: through `serve`, first open (every message fetched and decrypted)
  - serve-warm: through `serve` again, in a new session (decrypted messages come from the memory cache)
then, once serve's search index has caught up, a UID SEARCH BODY for a word in one message.

    .venv/bin/python -m benchmarks.serve [--messages 1000]
"""

from __future__ import annotations

import argparse
import imaplib
import os
import time

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import keyring

from benchmarks.rig import dovecot_and_key
from imapcrypt.serve.server import LocalServer, ServeSettings
from tests.fixtures.corpus import varied_seeds
from tests.fixtures.engine import make_rig
from tests.fixtures.keyrings import MemoryKeyring
from tests.fixtures.mailbox import Mailbox


def open_folder(port: int, user: str, password: str, expected: int) -> float:
    """Seconds for LOGIN, SELECT INBOX and UID FETCH 1:* (FLAGS ENVELOPE); checks the count."""
    started = time.perf_counter()
    client = imaplib.IMAP4("127.0.0.1", port, timeout=600)
    client.login(user, password)
    client.select("INBOX", readonly=True)
    status, data = client.uid("FETCH", "1:*", "(FLAGS ENVELOPE)")
    elapsed = time.perf_counter() - started
    client.logout()
    got = sum(1 for part in data if part and b"ENVELOPE" in (part if isinstance(part, bytes) else part[0]))
    assert status == "OK", data
    assert got == expected, (got, expected)
    return elapsed


def _report(label: str, seconds: float, count: int, direct: float) -> None:
    print(f"  {label:<11} {seconds:7.2f} s  {count / seconds:7.1f} msgs/s  x{seconds / direct:.1f} direct")


def main() -> None:
    """Seed, encrypt, and time the three ways of opening the folder."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    keyring.set_keyring(MemoryKeyring())  # the index's key needs a keyring; never the developer's own
    seeds = varied_seeds(args.messages, seed=7)
    with dovecot_and_key() as (server, home, scratch):
        user, password = server.new_user()
        mailbox = Mailbox(server, user, password)
        mailbox.seed(seeds)
        rig = make_rig(mailbox, home, scratch).with_policy(batch_size=100)
        with rig.engine() as engine:
            assert engine.encrypt_folder("INBOX", backlog=True).encrypted == len(seeds)
        size = sum(len(s.raw) for s in seeds)
        print(f"{args.messages} encrypted messages ({size / 1e6:.1f} MB of originals), {os.cpu_count()} CPUs")
        direct = open_folder(server.port, user, password, len(seeds))
        print(f"  {'direct':<11} {direct:7.2f} s")
        local = "local-pw"
        with LocalServer(rig.config(), local, ServeSettings(port=0)) as serve:
            cold = open_folder(serve.port, rig.account.name, local, len(seeds))
            _report("serve-cold", cold, len(seeds), direct)
            warm = open_folder(serve.port, rig.account.name, local, len(seeds))
            _report("serve-warm", warm, len(seeds), direct)
            assert serve.indexer is not None
            started = time.perf_counter()
            assert serve.indexer.pass_done.wait(3600)
            print(f"  index caught up {time.perf_counter() - started:.1f} s after the warm open")
            word = f"number {len(seeds) // 2}."
            started = time.perf_counter()
            client = imaplib.IMAP4("127.0.0.1", serve.port, timeout=600)
            client.login(rig.account.name, local)
            client.select("INBOX", readonly=True)
            status, data = client.uid("SEARCH", "BODY", f'"{word}"')
            took = time.perf_counter() - started
            client.logout()
            assert status == "OK", data
            assert len(data[0].split()) == 1, data
            print(f"  {'search':<11} {took:7.2f} s  (LOGIN, SELECT and UID SEARCH BODY over the index)")


if __name__ == "__main__":
    main()
