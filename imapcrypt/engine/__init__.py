"""The engine (docs/engine.md): replace a folder's plaintext messages by encrypted copies, or back.

For every message: journal the intent (with the digest of the copy), APPEND the copy with the
original's flags and INTERNALDATE, verify that the server gives back exactly the bytes sent, delete the
original, journal the completion. A crash at any point leaves an intent that the next run resolves
first, so every original exists exactly once afterwards, as itself or as its copy.

- `core`: the `Engine`: opening a folder, recovery, encrypting, storing and deleting;
- `copies`: finding our copies on the server and proving them by their bytes;
- `batches`: UIDs in batches, bodies in groups bounded by bytes, the watermark;
- `rewrite`: restoring and re-encrypting a folder through the same protocol;
- `report`: what a pass did, as counts.
"""

from imapcrypt.engine.core import MAX_VERIFY_FAILURES, Engine, seal_for
from imapcrypt.engine.report import FolderReport, ServerAltersMessages, unverified_note

__all__ = [
    "MAX_VERIFY_FAILURES",
    "Engine",
    "FolderReport",
    "ServerAltersMessages",
    "seal_for",
    "unverified_note",
]
