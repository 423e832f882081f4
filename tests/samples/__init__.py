"""Synthetic sample messages (no real person's mail), stored with LF line endings.

IMAP delivers CRLF: `load(name)` gives a sample as the server would serve it, `load(name, crlf=False)`
the bare-LF form that a file on disk (mbox, Maildir) usually holds.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
NAMES = sorted(path.stem for path in HERE.glob("*.eml"))


def load(name: str, *, crlf: bool = True) -> bytes:
    """The bytes of sample `name` (without .eml), with CRLF or bare-LF line endings."""
    data = (HERE / f"{name}.eml").read_bytes()
    return data.replace(b"\n", b"\r\n") if crlf else data
