"""Exposure window: how long a new message sits on the server in plaintext while the daemon watches.

Starts a server (Dovecot, or Cyrus or Courier unpacked as in the tests) and a GnuPG home, runs an
`AccountWorker` (the daemon) on a fresh account, and from another connection APPENDs messages at
random intervals. For each, the time from the APPEND's OK to the moment the daemon expunged the
plaintext (its `on_message_done` event) is the exposure. Prints p50/p90/p99/max beside Dovecot's own
IDLE notification floor (~0.5 s). Cyrus (without idled) and Courier (without FAM) push IDLE news only
every 60 s: `--idle-noop 0` shows that, the default shows the daemon's NOOP poll (idle_noop_seconds).

    .venv/bin/python -m benchmarks.exposure [--server dovecot|cyrus|courier] [--messages 60]
                                            [--max-gap 1.0] [--idle-noop 5] [--daemons 1]

With `--daemons 2` two installations (data dirs of their own, one key) watch the same account and
share the work by claims (docs/engine.md "Many installations, one mailbox"); a message's exposure
ends when whichever of them replaced it expunged the plaintext.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

from imapclient import IMAPClient

from imapcrypt.daemon import AccountWorker, StateChange, WorkerState
from imapcrypt.errors import ImapcryptError
from imapcrypt.events import MessageDone, Progress
from imapcrypt.imap.session import parse_appenduid
from tests.fixtures.corpus import make_message
from tests.fixtures.courier import start_courier
from tests.fixtures.cyrus import start_cyrus
from tests.fixtures.devices import another_installation
from tests.fixtures.dovecot import start_dovecot
from tests.fixtures.engine import make_rig
from tests.fixtures.gnupg_home import make_gnupg_home, remove_gnupg_home
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.waiting import wait_for

SERVERS: dict[str, Callable[[], Stoppable]] = {
    "dovecot": start_dovecot,
    "cyrus": start_cyrus,
    "courier": start_courier,
}


class Stoppable(Protocol):
    """A test server the benchmark can use: a port, fresh users, and a stop."""

    port: int

    def new_user(self) -> tuple[str, str]: ...
    def stop(self) -> None: ...


class Timer:
    """Records when each original UID was replaced."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.replaced: dict[int, float] = {}
        self.state = WorkerState.STARTING

    def on_progress(self, progress: Progress) -> None:
        """Not needed here."""

    def on_message_done(self, done: MessageDone) -> None:
        """Note the moment the plaintext was gone."""
        with self.lock:
            self.replaced[done.uid] = time.perf_counter()

    def on_error(self, error: ImapcryptError) -> None:
        """Show errors: a benchmark with errors means nothing."""
        print(f"error: {error}")

    def on_state(self, change: StateChange) -> None:
        """Track the worker's state."""
        self.state = change.state


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    """Append messages at random intervals under a watching daemon and print exposure percentiles."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--max-gap", type=float, default=1.0, help="longest pause between two APPENDs (s)")
    parser.add_argument("--server", choices=sorted(SERVERS), default="dovecot")
    parser.add_argument("--daemons", type=int, default=1, help="installations watching the account")
    parser.add_argument(
        "--idle-noop", type=float, default=5.0, help="the account's idle_noop_seconds (0: IDLE alone)"
    )
    args = parser.parse_args()
    server = SERVERS[args.server]()
    home = make_gnupg_home()
    scratch = Path(tempfile.mkdtemp(prefix="imapcrypt-exposure-"))
    rng = random.Random(1)  # arrival times, not secrets
    try:
        user, password = server.new_user()
        rig = make_rig(Mailbox(server, user, password), home, scratch)
        rig = rig.with_policy(idle_noop_seconds=args.idle_noop)
        rigs = [rig, *(another_installation(rig, f"d{n}") for n in range(1, args.daemons))]
        timers = [Timer() for _ in rigs]
        workers = [AccountWorker(r.config(), r.account, t) for r, t in zip(rigs, timers, strict=True)]
        threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
        for thread in threads:
            thread.start()
        wait_for(
            lambda: all(t.state is WorkerState.IDLE for t in timers), timeout=30, what="the daemons idle"
        )

        def replaced() -> dict[int, float]:
            return {uid: at for t in timers for uid, at in dict(t.replaced).items()}

        appended: dict[int, float] = {}
        client = IMAPClient("127.0.0.1", port=server.port, ssl=False)
        client.login(user, password)
        for index in range(args.messages):
            time.sleep(rng.uniform(0.05, args.max_gap))  # the arrival process being measured, not a wait
            response = client.append("INBOX", make_message(index, rng))
            appended[parse_appenduid(response, 1)[0]] = time.perf_counter()
        client.logout()
        wait_for(lambda: len(replaced()) >= len(appended), timeout=180, what="every message replaced")
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(30)
        done = replaced()
        exposure = [done[uid] - at for uid, at in appended.items()]
        shares = [len(t.replaced) for t in timers]
        print(
            f"{args.server}, {args.daemons} daemon(s) (messages replaced by each: {shares}), "
            f"idle_noop_seconds {args.idle_noop:g}: {len(exposure)} messages, "
            f"gaps 0.05-{args.max_gap:g} s, Dovecot IDLE floor ~0.51 s"
        )
        print(
            "exposure s: "
            f"p50 {percentile(exposure, 0.5):.3f}  p90 {percentile(exposure, 0.9):.3f}  "
            f"p99 {percentile(exposure, 0.99):.3f}  max {max(exposure):.3f}  "
            f"mean {statistics.mean(exposure):.3f}"
        )
        print(f"ratio p50 / IDLE floor {percentile(exposure, 0.5) / 0.51:.2f}")
    finally:
        server.stop()
        remove_gnupg_home(home)
        shutil.rmtree(getattr(server, "root", scratch), ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
