"""Backlog throughput: the engine against a plain copy without encryption, side by side, on loopback
and through a 50 ms round-trip delay proxy, three runs each.

Starts one Dovecot and a latency proxy in front of it, seeds the same messages into a fresh account for
every contender and run, and times (on loopback straight to Dovecot: the proxy runs in this process,
and its forwarding would take the engine's interpreter lock, not the plain copy's):
  - plain copy:  the best a tool without crypto does (batched FETCH, MULTIAPPEND of 100, then one
                 STORE \\Deleted + UID EXPUNGE per batch)
  - imapcrypt:   `Engine.encrypt_folder(backlog=True)` with the account's defaults: encrypt, journal,
                 append, verify every copy byte for byte, claim and delete
and prints, per round-trip time, each run's rates and ratio, then the median ratio and its spread.
With --detail it also times the engine with `verify = "size"`, without claims (as on a server that
refuses keywords) and with a gpg process per encryption (where pysequoia is missing).

    .venv/bin/python -m benchmarks.backlog [--messages 2000] [--rtt-ms 0 50] [--runs 3] [--detail]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

from imapclient import IMAPClient

from benchmarks.rig import dovecot_and_key
from imapcrypt.config.model import Account
from imapcrypt.openpgp.inprocess import IN_PROCESS_MAX_BYTES, encryptor
from tests.fixtures.corpus import Seed, varied_seeds
from tests.fixtures.dovecot import DovecotServer
from tests.fixtures.engine import make_rig
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.proxy import FaultProxy

PLAIN_BATCH = 100


def _flags(data: dict[bytes, object]) -> list[bytes]:
    return [f for f in data[b"FLAGS"] if f != b"\\Recent"]  # type: ignore[attr-defined]


def _client(port: int, mailbox: Mailbox) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=60)
    client.normalise_times = False
    # As the engine's sessions do (imap/connect.py): without it each MULTIAPPEND's literal waits on
    # a delayed ACK, and the plain copy would not be the best a tool can do.
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.login(mailbox.user, mailbox.password)
    client.select_folder("INBOX")
    return client


def copy_batched(port: int, mailbox: Mailbox, batch: int = PLAIN_BATCH) -> None:
    """A plain copy, a batch per round trip where IMAP allows it: FETCH, MULTIAPPEND, STORE, EXPUNGE."""
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


def _seed(server: DovecotServer, seeds: list[Seed]) -> Mailbox:
    """A fresh account holding `seeds` (stored straight into Dovecot, in MULTIAPPENDs of 200)."""
    user, password = server.new_user()
    mailbox = Mailbox(server, user, password)
    client = _client(server.port, mailbox)
    for start in range(0, len(seeds), 200):
        client.multiappend(
            "INBOX", [{"msg": s.raw, "flags": s.flags, "date": s.when} for s in seeds[start : start + 200]]
        )
    client.logout()
    return mailbox


def measure(seeds: list[Seed], server: DovecotServer, work: Callable[[Mailbox], None]) -> float:
    """Seed a fresh account, time `work` on it, and return messages per second."""
    mailbox = _seed(server, seeds)
    started = time.perf_counter()
    work(mailbox)
    return len(seeds) / (time.perf_counter() - started)


class Contenders:
    """The engine variants, each run on a fresh account at `port` (the server, or the delay proxy)."""

    def __init__(self, port: int, home: GnupgHome, scratch: Path, count: int) -> None:
        self.port = port
        self.home = home
        self.scratch = scratch
        self.count = count

    def plain(self, mailbox: Mailbox) -> None:
        copy_batched(self.port, mailbox)

    def engine(
        self, mailbox: Mailbox, in_process: bool = True, verify: str = "bytes", claims: bool = True
    ) -> None:
        rig = make_rig(mailbox, self.home, self.scratch).at_port(self.port)
        # The test rig's small batches are for tests: the benchmark runs the shipped default.
        batch = next(f.default for f in dataclasses.fields(Account) if f.name == "batch_size")
        with rig.with_policy(batch_size=batch, verify=verify).engine() as worker:
            # max_bytes -1: every message goes through gpg, as where pysequoia is missing.
            encryptor(worker.gpg).max_bytes = IN_PROCESS_MAX_BYTES if in_process else -1
            if not claims:  # as on a server without keywords: no coordination, no claim round trips
                worker.claims.keyword = None
            report = worker.encrypt_folder("INBOX", backlog=True)
        assert report.encrypted == self.count, report


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):5.2f} (runs {', '.join(f'{v:.2f}' for v in values)})"


def _compare(
    args: argparse.Namespace,
    seeds: list[Seed],
    server: DovecotServer,
    proxy: FaultProxy,
    contenders: Contenders,
) -> None:
    """Each round-trip time in turn: the runs, then the median ratios."""
    size = sum(len(s.raw) for s in seeds)
    summary: list[str] = []
    print(f"{args.messages} messages, {size / 1e6:.1f} MB, {os.cpu_count()} CPUs, {args.runs} runs")
    for rtt in args.rtt_ms:
        proxy.set_latency(rtt / 2000)
        contenders.port = proxy.port if rtt > 0 else server.port
        ratios: list[float] = []
        runs: dict[str, list[float]] = {"plain": [], "imapcrypt": []}
        for run in range(args.runs):
            # Alternate who goes first, so a warming cache or a busy neighbour favours neither.
            order = [("plain", contenders.plain), ("imapcrypt", contenders.engine)]
            rates = {name: measure(seeds, server, work) for name, work in order[:: 1 - 2 * (run % 2)]}
            ratios.append(rates["imapcrypt"] / rates["plain"])
            for name, rate in rates.items():
                runs[name].append(rate)
            print(
                f"RTT {rtt:3g} ms run {run + 1}: plain copy {rates['plain']:7.1f} msg/s, "
                f"imapcrypt {rates['imapcrypt']:7.1f} msg/s, ratio {ratios[-1]:.2f}"
            )
        if args.detail:
            for label, work in (
                ("verify = size", lambda m: contenders.engine(m, verify="size")),
                ("without claims", lambda m: contenders.engine(m, claims=False)),
                ("gpg process each", lambda m: contenders.engine(m, in_process=False)),
            ):
                print(f"RTT {rtt:3g} ms {label:<17} {measure(seeds, server, work):7.1f} msg/s")
        # The plain copy's rate varies more from run to run (on loopback now and then twice
        # as fast): the engine's median against its fastest run is the cautious reading.
        cautious = statistics.median(runs["imapcrypt"]) / max(runs["plain"])
        summary.append(
            f"ratio imapcrypt / plain copy at RTT {rtt:3g} ms: {_spread(ratios)}; "
            f"median against the plain copy's fastest run {cautious:.2f}"
        )
    print("\n".join(summary))


def main() -> None:
    """Time the plain copy and the engine on each round-trip time and print the ratios."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rtt-ms", type=float, nargs="+", default=[0.0, 50.0], help="round trips to test")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--detail", action="store_true", help="also time verify=size, no claims, gpg")
    args = parser.parse_args()
    seeds = varied_seeds(args.messages, seed=42)
    with dovecot_and_key() as (server, home, scratch):
        proxy = FaultProxy(server.port).start()
        try:
            _compare(args, seeds, server, proxy, Contenders(server.port, home, scratch, len(seeds)))
        finally:
            proxy.stop()


if __name__ == "__main__":
    main()
