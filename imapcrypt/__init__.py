"""imapcrypt: keep an IMAP mailbox OpenPGP-encrypted at rest.

This package is the engine and the command line. It never imports Qt: the tray app lives in
``imapcrypt_ui`` and talks to the engine only through its public API.
"""

__version__ = "0.1.0"
