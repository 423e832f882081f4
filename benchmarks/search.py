"""Body search over N indexed messages: serve's search index against scanning the originals.

Indexes N varied messages (tests/fixtures/corpus.py) into a fresh SQLCipher index, then times, side by
side, a BODY search for a word in one message, one in every message and a two-letter one:
  - index: `SearchIndex.search` (FTS5 trigram, encrypted pages)
  - scan:  a case-insensitive substring scan of every original in memory, as a server without an index
           does at best (with the originals already decrypted)
and what that scan costs for real: each message decrypted first (timed over a sample, with GnuPG).

    .venv/bin/python -m benchmarks.search [--messages 10000]
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from imapcrypt.message import envelope
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.serve.index import SearchIndex
from tests.fixtures.corpus import varied_seeds
from tests.fixtures.gnupg_home import make_gnupg_home, remove_gnupg_home

WHERE = ("bench", "INBOX", 1)
SAMPLE = 40  # messages sealed and opened to time one decryption


def decrypt_seconds(originals: list[bytes]) -> float:
    """Seconds one imapcrypt copy takes to decrypt, averaged over a sample (one at a time)."""
    home = make_gnupg_home()
    try:
        gpg = GnuPG(home.path)
        sealed = [
            envelope.seal(raw, gpg, [home.fingerprint], b"k" * 32).message for raw in originals[:SAMPLE]
        ]
        started = time.perf_counter()
        for message in sealed:
            envelope.restore(message, gpg)
        return (time.perf_counter() - started) / len(sealed)
    finally:
        remove_gnupg_home(home)


def main() -> None:
    """Index, then time the searches both ways."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    originals = [seed.raw for seed in varied_seeds(args.messages, seed=3)]
    scratch = Path(tempfile.mkdtemp(prefix="imapcrypt-bench-"))
    try:
        index = SearchIndex(scratch / "index.db", secrets.token_hex(32))
        started = time.perf_counter()
        for start in range(0, len(originals), 48):  # as serve adds them: a group of decrypted messages
            index.add(
                *WHERE,
                {uid: originals[uid - 1] for uid in range(start + 1, min(start + 49, len(originals) + 1))},
            )
        took = time.perf_counter() - started
        size = sum(len(r) for r in originals) / 1e6
        on_disk = (scratch / "index.db").stat().st_size / 1e6
        print(f"{args.messages} messages, {size:.0f} MB; indexed in {took:.1f} s, index {on_disk:.0f} MB")
        one = f"number {args.messages // 2}."
        for label, words, expected in (
            ("one", one, 1),
            ("all", "lorem ipsum", args.messages),
            ("short", "um", 0),
        ):
            started = time.perf_counter()
            found = index.search(*WHERE, b"BODY", words)
            indexed = time.perf_counter() - started
            pattern = re.compile(re.escape(words.encode()), re.I)
            started = time.perf_counter()
            scanned = [raw for raw in originals if pattern.search(raw.split(b"\r\n\r\n", 1)[1])]
            scan = time.perf_counter() - started
            assert len(found) == len(scanned) or expected == 0, (label, len(found), len(scanned))
            print(
                f"  {label:<6} {len(found):6d} found  index {indexed * 1000:8.1f} ms  "
                f"scan {scan * 1000:8.1f} ms  ratio scan/index {scan / indexed:6.1f}"
            )
        index.close()
        each = decrypt_seconds(originals)
        print(
            f"without an index every search first decrypts every message: {each * 1000:.1f} ms each, "
            f"{each * len(originals):.0f} s for {len(originals)} (one at a time; serve runs four at once)"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
