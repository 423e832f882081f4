"""`imapcrypt serve` (docs/serve.md): a local IMAP server on 127.0.0.1 that shows the mailbox decrypted.

`provider` is the account's side (the provider's folders through imapcrypt's own Session, decrypting
on demand, sealing what a client appends); `folder` and `backend` adapt it to pymap's backend
interfaces (a folder as a session sees it; the session and login); `structure` writes ENVELOPE and
BODYSTRUCTURE as RFC 3501 says; `server` runs pymap's IMAP server on loopback; `cache` keeps
decrypted messages in memory only, bounded; `index` and `indexer` keep the encrypted search index;
`tls` makes the certificate for `--starttls`. The local password is secrets.serve_password.
"""

# Not 143: that one needs root, and a provider's own local proxy may already have it.
DEFAULT_PORT = 1143
# Memory for decrypted, parsed messages: a few thousand typical messages; a folder read in order that is
# larger than this is decrypted again on the next read (`--cache-mb` gives more).
DEFAULT_CACHE_MB = 64
