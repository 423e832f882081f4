"""Backlog throughput: the engine against plain copy loops without encryption, side by side.

Starts one Dovecot (and optionally a latency proxy in front of it), seeds the same messages into
fresh accounts, and times, in one run:
  - copy-naive:   per message FETCH, APPEND, STORE \\Deleted + UID EXPUNGE (what a simple tool does)
  - copy-batched: the same work in batches (one FETCH, one MULTIAPPEND, one STORE/EXPUNGE a batch)
  - imapcrypt:    `Engine.encrypt_folder(backlog=True)`: encrypt, journal, append, verify, delete,
                  with `verify = "bytes"` (the default: every stored copy downloaded and compared)
  - imapcrypt-size: the same with `verify = "size"` (the opt-in), to show what byte comparison costs
  - imapcrypt-gpg: the same as imapcrypt with a gpg process per encryption (the path without pysequoia)
  - imapcrypt-no-claims: imapcrypt without claims (as on a server that refuses keywords), to show
                  what coordinating installations costs (docs/engine.md "Many installations")
and prints msgs/s, the engine's ratio to each loop, and what byte-for-byte verification and claims cost.

    .venv/bin/python -m benchmarks.backlog [--messages 500] [--rtt-ms 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

from imapclient import IMAPClient

from imapcrypt.openpgp.inprocess import IN_PROCESS_MAX_BYTES, encryptor
from tests.fixtures.corpus import Seed, varied_seeds
from tests.fixtures.dovecot import DovecotServer, start_dovecot
from tests.fixtures.engine import make_rig
from tests.fixtures.gnupg_home import make_gnupg_home, remove_gnupg_home
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.proxy import FaultProxy


def _flags(data: dict[bytes, object]) -> list[bytes]:
    return [f for f in data[b"FLAGS"] if f != b"\\Recent"]  # type: ignore[attr-defined]


def _client(port: int, mailbox: Mailbox) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=60)
    client.normalise_times = False
    client.login(mailbox.user, mailbox.password)
    client.select_folder("INBOX")
    return client


def copy_naive(port: int, mailbox: Mailbox) -> None:
    """One message at a time: fetch it, append it back, delete the original."""
    client = _client(port, mailbox)
    for uid in client.search("ALL"):
        data = client.fetch([uid], ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])[uid]
        client.append("INBOX", data[b"BODY[]"], _flags(data), data[b"INTERNALDATE"])
        client.add_flags([uid], [b"\\Deleted"], silent=True)
        client.uid_expunge([uid])
    client.logout()


def copy_batched(port: int, mailbox: Mailbox, batch: int = 50) -> None:
    """The same copy, a batch per round trip where IMAP allows it."""
    client = _client(port, mailbox)
    uids = client.search("ALL")
    for start in range(0, len(uids), batch):
        chunk = uids[start : start + batch]
        data = client.fetch(chunk, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
        client.multiappend(
            "INBOX",
            [{"msg": d[b"BODY[]"], "flags": _flags(d), "date": d[b"INTERNALDATE"]} for d in data.values()],
        )
        client.add_flags(chunk, [b"\\Deleted"], silent=True)
        client.uid_expunge(chunk)
    client.logout()


def measure(label: str, seeds: list[Seed], server: DovecotServer, work: Callable[[Mailbox], None]) -> float:
    """Seed a fresh account, time `work` on it, and return messages per second."""
    user, password = server.new_user()
    mailbox = Mailbox(server, user, password)
    mailbox.seed(seeds)
    started = time.perf_counter()
    work(mailbox)
    elapsed = time.perf_counter() - started
    rate = len(seeds) / elapsed
    print(f"  {label:<16} {elapsed:7.2f} s  {rate:8.1f} msgs/s")
    return rate


def main() -> None:
    """Run the three contenders on the same messages and print their rates and ratios."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="round-trip latency added by a proxy")
    args = parser.parse_args()
    seeds = varied_seeds(args.messages, seed=42)
    size = sum(len(s.raw) for s in seeds)
    server = start_dovecot()
    home = make_gnupg_home()
    proxy = FaultProxy(server.port).start()
    proxy.set_latency(args.rtt_ms / 2000)
    scratch = Path(tempfile.mkdtemp(prefix="imapcrypt-bench-"))
    try:
        print(f"{args.messages} messages, {size / 1e6:.1f} MB, RTT {args.rtt_ms:g} ms, {os.cpu_count()} CPUs")
        naive = measure("copy-naive", seeds, server, lambda m: copy_naive(proxy.port, m))
        batched = measure("copy-batched", seeds, server, lambda m: copy_batched(proxy.port, m))

        def engine(
            mailbox: Mailbox, in_process: bool = True, verify: str = "bytes", claims: bool = True
        ) -> None:
            rig = make_rig(mailbox, home, scratch).at_port(proxy.port)
            with rig.with_policy(batch_size=50, verify=verify).engine() as worker:
                # max_bytes -1: every message goes through gpg, as where pysequoia is missing.
                encryptor(worker.gpg).max_bytes = IN_PROCESS_MAX_BYTES if in_process else -1
                if not claims:  # as on a server without keywords: no coordination, no claim round trips
                    worker.claims.keyword = None
                report = worker.encrypt_folder("INBOX", backlog=True)
            assert report.encrypted == len(seeds), report

        ours = measure("imapcrypt", seeds, server, engine)
        by_size = measure("imapcrypt-size", seeds, server, lambda m: engine(m, verify="size"))
        unclaimed = measure("imapcrypt-no-claims", seeds, server, lambda m: engine(m, claims=False))
        print(f"ratio imapcrypt/imapcrypt-no-claims {ours / unclaimed:5.2f}   (what claims cost)")
        through_gpg = measure("imapcrypt-gpg", seeds, server, lambda m: engine(m, in_process=False))
        for name, rate in (("copy-naive", naive), ("copy-batched", batched)):
            print(f"ratio imapcrypt/{name:<13} {ours / rate:5.2f}   (gpg path {through_gpg / rate:5.2f})")
        print(f"verify = bytes costs {100 * (1 - ours / by_size):5.1f}% of verify = size throughput")
    finally:
        proxy.stop()
        server.stop()
        remove_gnupg_home(home)
        shutil.rmtree(server.root, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
