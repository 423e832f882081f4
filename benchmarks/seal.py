"""What sealing a message costs, printed side by side (docs/format.md#measurements).

    .venv/bin/python benchmarks/seal.py [--quick]

1. seal() per message on both OpenPGP paths (in process, and a gpg process per encryption) against a
   bare `gpg --encrypt --armor` of the same bytes (same compression), for 2 KB, 8 KB, 50 KB, 1 MB and
   25 MB messages, and the size of E against the original on each path (messages above
   IN_PROCESS_MAX_BYTES go through gpg on both);
2. peak RSS of a fresh process sealing the 25 MB message, against one that only holds it;
3. compression none / zlib 1 / zlib 6: time and size on a text message and on a message whose
   attachment is already compressed (random bytes, base64 as mail carries them).
The numbers that chose the default are in docs/format.md. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import base64
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imapcrypt.message.envelope import seal  # noqa: E402
from imapcrypt.openpgp.gnupg import DEFAULT_COMPRESSION, Compression, GnuPG  # noqa: E402

SECRET = b"benchmark-secret-0123456789abcdef"
PROSE = """
the of and to in is that for it as was with be by on not
he this are or his from at which but have an they you were her she
there would their we him been has when who will more no if out so said
what up its about into than them can only other new some could time these two
may then do first any my now such like our over man me even most made
after also did many before must through back years where much your way well down should
because each just those people how too little state good very make world still own see
men work long get here between both life being under never day same another know while
last might us great old year off come since against go came right used meeting invoice
tomorrow project report please thanks regards attached schedule review draft
"""
WORDS = PROSE.split()


def make_key(home: Path) -> str:
    """A fresh ed25519/cv25519 key in `home`; its fingerprint."""
    gpg = ["gpg", "--homedir", str(home), "--batch", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "Bench <b@example.org>", "future-default", "default", "never"],
                   check=True, capture_output=True)  # fmt: skip
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    )
    return next(line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:"))


def text_body(size: int, rng: random.Random) -> bytes:
    """Plain prose-like text in 72-column lines, CRLF."""
    lines: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rng.choices(WORDS, k=12)).capitalize() + "."
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines).encode("ascii") + b"\r\n"


def message(body_size: int, rng: random.Random, attachment: bool) -> bytes:
    """A message of about `body_size` bytes: text, or a short text plus a compressed-looking attachment."""
    head = (
        b"From: Alice Example <alice@example.org>\r\nTo: Bob Example <bob@example.org>\r\n"
        b"Subject: Quarterly report\r\nDate: Tue, 02 Jan 2024 10:00:00 +0100\r\n"
        b"Message-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n"
    )
    if not attachment:
        return head + b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + text_body(body_size, rng)
    blob = base64.encodebytes(rng.randbytes(body_size * 3 // 4)).replace(b"\n", b"\r\n")
    return (
        head + b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        b"Content-Type: text/plain\r\n\r\n" + text_body(500, rng) + b"--b1\r\n"
        b'Content-Type: application/zip; name="a.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + blob
        + b"--b1--\r\n"
    )


def timed(repeat: int, action: Callable[[], object]) -> float:
    """Median wall time of `action` in milliseconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bare_gpg(home: Path, fingerprint: str, data: bytes, compression: Compression) -> bytes:
    """`gpg --encrypt --armor` from the command line, the floor that seal() is measured against."""
    done = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--no-random-seed-file", "--trust-model", "always",
         *compression.gpg_options(), "--armor", "--encrypt", "-r", fingerprint],
        input=data, check=True, capture_output=True,
    )  # fmt: skip
    return done.stdout


def peak_rss_mb(home: Path, fingerprint: str, raw: bytes, do_seal: bool) -> float:
    """Peak RSS (MB) of a fresh process that reads `raw` from a file and maybe seals it.

    VmHWM, not ru_maxrss: Linux carries the parent's high-water mark across fork+exec into ru_maxrss.
    """
    with tempfile.NamedTemporaryFile(prefix="icbench-") as file:
        file.write(raw)
        file.flush()
        script = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
raw = Path({file.name!r}).read_bytes()
if {do_seal}:
    from imapcrypt.message.envelope import seal
    from imapcrypt.openpgp.gnupg import GnuPG
    sealed = seal(raw, GnuPG(Path({str(home)!r})), [{fingerprint!r}], {SECRET!r})
else:
    import imapcrypt.message.envelope
status = Path("/proc/self/status").read_text()
print(next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024)
"""
        done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    quick = parser.parse_args().quick
    home = Path(tempfile.mkdtemp(prefix="icbench-"))
    home.chmod(0o700)
    try:
        fingerprint = make_key(home)
        rng = random.Random(7)
        gpg = GnuPG(home)
        print(
            f"seal() in process and through gpg vs bare `gpg --encrypt --armor`, {DEFAULT_COMPRESSION.value}"
        )
        print(f"{'message':>10} {'kind':>7} {'in-proc ms':>10} {'gpg-path ms':>11} {'bare gpg ms':>11} "
              f"{'gpg/in-proc':>11} {'E/M in-proc':>11} {'E/M gpg':>8}")  # fmt: skip
        sizes = [(2_000, 40), (8_000, 40), (50_000, 30), (1_000_000, 8), (25_000_000, 2)]
        for size, repeat in sizes:
            for attachment in (False, True) if size >= 8_000 else (False,):
                raw = message(size, rng, attachment)
                reps = max(2, repeat // 4) if quick else repeat
                fast_ms = timed(reps, partial(seal, raw, gpg, [fingerprint], SECRET))
                slow_ms = timed(reps, partial(seal, raw, gpg, [fingerprint], SECRET, encrypt_with=gpg))
                gpg_ms = timed(reps, partial(bare_gpg, home, fingerprint, raw, DEFAULT_COMPRESSION))
                fast = seal(raw, gpg, [fingerprint], SECRET).message
                slow = seal(raw, gpg, [fingerprint], SECRET, encrypt_with=gpg).message
                kind = "attach" if attachment else "text"
                print(f"{len(raw):>10} {kind:>7} {fast_ms:>10.2f} {slow_ms:>11.2f} {gpg_ms:>11.2f} "
                      f"{slow_ms / fast_ms:>11.1f} {len(fast) / len(raw):>11.3f} "
                      f"{len(slow) / len(raw):>8.3f}")  # fmt: skip

        raw = message(25_000_000, rng, attachment=True)
        base = peak_rss_mb(home, fingerprint, raw, do_seal=False)
        peak = peak_rss_mb(home, fingerprint, raw, do_seal=True)
        mb = len(raw) / 1e6
        print(f"\npeak RSS, {mb:.0f} MB message: Python holding it {base:.0f} MB, sealing it {peak:.0f} MB "
              f"(+{peak - base:.0f} MB = {(peak - base) / mb:.1f}x the message)")  # fmt: skip

        print("\ncompression: ms per message and E/M size (seal(), same key)")
        print(f"{'message':>22} " + " ".join(f"{c.value + ' ms':>10} {'size':>6}" for c in Compression))
        for label, size, attachment in (
            ("text 1 MB", 1_000_000, False),
            ("attachment 1 MB", 1_000_000, True),
            ("attachment 10 MB", 10_000_000, True),
        ):
            raw = message(size, rng, attachment)
            cells = []
            for compression in Compression:
                variant = GnuPG(home, compression=compression)
                ms = timed(2 if quick else 5, partial(seal, raw, variant, [fingerprint], SECRET))
                ratio = len(seal(raw, variant, [fingerprint], SECRET).message) / len(raw)
                cells.append(f"{ms:>10.1f} {ratio:>6.3f}")
            print(f"{label:>22} " + " ".join(cells))
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
