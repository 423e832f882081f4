"""Memory of a whole `imapcrypt backlog` process: its peak with one large message, its curve over many.

Starts one Dovecot, seeds fresh accounts from tests/fixtures, and runs the real CLI (`python -m
imapcrypt --config ... backlog`) as a child process, twice:
  - peak:  `--small` small messages with one message of about `--large-mb` MB among them. Prints
           the child's peak RSS (VmHWM, read from /proc every 10 ms; a high-water mark, so a later
           read still sees an earlier peak) next to the limit of docs/engine.md "Memory", 100 MiB +
           3x the large message, and the ratio. Not wait4's ru_maxrss: Linux folds into it the RSS
           of the forked child before exec, which is this benchmark's own, seeds included.
  - many:  `--many` messages of `--many-mb` MB each (photos, scans): what the mail in flight costs
           (docs/engine.md "Memory": groups of GROUP_BYTES, one sealed while one is stored).
  - curve: a backlog of `--messages` varied messages (tests/fixtures/corpus.py, up to ~60 kB each).
           VmRSS is sampled every `--every` seconds and printed as a curve, with the spread
           (max - min) after the first 20% of the run, so a flat curve shows as a small spread.

    .venv/bin/python -m benchmarks.memory [--large-mb 25] [--small 200] [--many 50] [--many-mb 3]
                                          [--messages 10000] [--only peak|many|curve]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

from benchmarks.rig import dovecot_and_key
from tests.fixtures.corpus import Seed, large_seed, varied_seeds
from tests.fixtures.dovecot import DovecotServer
from tests.fixtures.engine import make_rig
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.processes import MemorySamples, backlog_command, memory_limit, run_measuring_memory

MIB = 1024 * 1024


def run_backlog(config: Path, every: float) -> tuple[float, MemorySamples]:
    """Run `imapcrypt backlog` on `config` to its end; the seconds it took and its memory samples."""
    stderr = config.with_suffix(".stderr")
    returncode, elapsed, samples = run_measuring_memory(backlog_command(config), stderr, every)
    if returncode != 0:
        print(stderr.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise SystemExit(f"imapcrypt backlog exited {returncode}")
    return elapsed, samples


def seed_fast(mailbox: Mailbox, seeds: list[Seed], batch: int = 200) -> None:
    """Store `seeds` with MULTIAPPEND, a batch per command (much faster than APPEND each)."""
    with mailbox.client(timeout=300) as client:
        for start in range(0, len(seeds), batch):
            client.multiappend(
                "INBOX",
                [{"msg": s.raw, "flags": s.flags, "date": s.when} for s in seeds[start : start + batch]],
            )


def fresh_config(server: DovecotServer, home: GnupgHome, scratch: Path, seeds: list[Seed]) -> Path:
    """A new account holding `seeds` and a CLI configuration for it (the account's default policy)."""
    user, password = server.new_user()
    mailbox = Mailbox(server, user, password)
    seed_fast(mailbox, seeds)
    return make_rig(mailbox, home, scratch).write_config()


def peak(server: DovecotServer, home: GnupgHome, scratch: Path, large_mb: float, small: int) -> None:
    """Peak RSS of a backlog with one large message among `small` others, against the limit."""
    seeds = varied_seeds(small, seed=42)
    large = large_seed(int(large_mb * 1e6))
    seeds.insert(len(seeds) // 2, large)
    size = len(large.raw)
    config = fresh_config(server, home, scratch, seeds)
    elapsed, samples = run_backlog(config, every=0.01)
    limit = memory_limit(size)
    print(
        f"peak: {small} small messages and one of {size / 1e6:.1f} MB ({size / MIB:.1f} MiB), {elapsed:.1f} s"
    )
    print(f"  peak RSS   {samples.peak / MIB:7.1f} MiB  (VmHWM of the whole process)")
    print(f"  limit      {limit / MIB:7.1f} MiB  (100 MiB + 3 x {size / MIB:.1f} MiB)")
    verdict = "within" if samples.peak <= limit else "OVER"
    print(f"  ratio      {samples.peak / limit:7.2f}   ({verdict} the limit)")


def many(server: DovecotServer, home: GnupgHome, scratch: Path, count: int, size_mb: float) -> None:
    """Peak RSS of a backlog of `count` messages of `size_mb` MB each."""
    seeds = [large_seed(int(size_mb * 1e6), seed=index) for index in range(count)]
    size = max(len(s.raw) for s in seeds)
    config = fresh_config(server, home, scratch, seeds)
    elapsed, samples = run_backlog(config, every=0.01)
    print(f"many: {count} messages of {size / 1e6:.1f} MB, {elapsed:.1f} s")
    print(f"  peak RSS   {samples.peak / MIB:7.1f} MiB  (VmHWM of the whole process)")


def curve(server: DovecotServer, home: GnupgHome, scratch: Path, messages: int, every: float) -> None:
    """VmRSS over a backlog of `messages`, as a curve and its spread after warm-up."""
    seeds = varied_seeds(messages, seed=42)
    total = sum(len(s.raw) for s in seeds)
    config = fresh_config(server, home, scratch, seeds)
    elapsed, samples = run_backlog(config, every=every)
    print(
        f"curve: {messages} messages, {total / 1e6:.0f} MB, {elapsed:.1f} s "
        f"({messages / elapsed:.0f} msgs/s), peak RSS {samples.peak / MIB:.1f} MiB"
    )
    top = max(samples.rss)
    for at_tenth in range(11):
        # The sample nearest each tenth of the run's duration.
        index = min(range(len(samples.times)), key=lambda i: abs(samples.times[i] - elapsed * at_tenth / 10))
        rss = samples.rss[index]
        bar = "#" * round(50 * rss / top)
        print(f"  {samples.times[index]:6.1f} s  {rss / MIB:7.1f} MiB  {bar}")
    warm = [rss for t, rss in zip(samples.times, samples.rss, strict=True) if t >= elapsed * 0.2]
    spread = max(warm) - min(warm)
    print(
        f"  after warm-up (last 80%): min {min(warm) / MIB:.1f} MiB, max {max(warm) / MIB:.1f} MiB, "
        f"spread {spread / MIB:.1f} MiB over {len(warm)} samples"
    )


def main() -> None:
    """Measure the peak with one large message, with many medium ones, and the curve over a long backlog."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--large-mb", type=float, default=25.0, help="size of the large message (MB)")
    parser.add_argument("--small", type=int, default=200, help="small messages beside the large one")
    parser.add_argument("--many", type=int, default=50, help="messages in the many-medium backlog")
    parser.add_argument("--many-mb", type=float, default=3.0, help="size of each of those (MB)")
    parser.add_argument("--messages", type=int, default=10_000, help="messages in the curve's backlog")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between the curve's samples")
    parser.add_argument("--only", choices=("peak", "many", "curve"))
    args = parser.parse_args()
    with dovecot_and_key() as (server, home, scratch):
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        if args.only in (None, "peak"):
            peak(server, home, scratch, args.large_mb, args.small)
        if args.only in (None, "many"):
            many(server, home, scratch, args.many, args.many_mb)
        if args.only in (None, "curve"):
            curve(server, home, scratch, args.messages, args.every)


if __name__ == "__main__":
    main()
