"""Unlocking and locking a secret key for reading: a passphrase prompt that means something.

gpg-agent caches a secret key's passphrase once it has been used (after key generation, after any
decryption; docs/keys.md#gpg-agent-caches-passphrases). While it is cached, gpg decrypts whatever
passphrase it is handed, so "it decrypted" proves nothing about what the user typed. `check_passphrase`
therefore first makes the agent forget the key's passphrase, then opens a probe with the typed one:
only the right passphrase can pass. `forget_passphrases` is what "Lock" does.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
from collections.abc import Sequence

from imapcrypt.errors import CredentialsError, ImapcryptError, RecipientKeyError
from imapcrypt.openpgp.gnupg import GnuPG, normalise_fingerprint
from imapcrypt.openpgp.run import run_gpg

log = logging.getLogger(__name__)

AGENT_TIMEOUT_SECONDS = 30.0


def secret_keygrips(gpg: GnuPG, fingerprints: Sequence[str]) -> list[str]:
    """The keygrips of the secret (sub)keys of `fingerprints` held in this home: the agent's cache ids."""
    wanted = [normalise_fingerprint(f) for f in fingerprints]
    if not wanted or not gpg.home.is_dir():
        return []
    output = run_gpg(gpg, ["--with-colons", "--with-keygrip", "--list-secret-keys", *wanted])
    return [line.split(":")[9] for line in output.stdout.decode().splitlines() if line.startswith("grp:")]


def forget_passphrases(gpg: GnuPG, fingerprints: Sequence[str]) -> None:
    """Make gpg-agent forget the cached passphrases of these keys (no agent running: nothing cached)."""
    grips = secret_keygrips(gpg, fingerprints)
    if not grips:
        return
    commands = [f"CLEAR_PASSPHRASE --mode=normal {grip}" for grip in grips]
    done = subprocess.run(
        ["gpg-connect-agent", "--homedir", str(gpg.home), "--no-autostart", *commands, "/bye"],
        capture_output=True,
        timeout=AGENT_TIMEOUT_SECONDS,
        check=False,
    )
    # No agent means an empty cache; any other refusal would leave a wrong passphrase working.
    refused = [line for line in done.stdout.decode(errors="replace").splitlines() if line.startswith("ERR")]
    if refused and b"no gpg-agent running" not in done.stderr:
        raise ImapcryptError(
            f"gpg-agent did not forget the passphrase ({refused[0][:80]})", "run `gpgconf --kill gpg-agent`"
        )
    log.info("gpg-agent forgot the passphrases of %d key(s)", len(fingerprints))


def check_passphrase(gpg: GnuPG, fingerprints: Sequence[str], passphrase: str) -> str:
    """The fingerprint whose secret key `passphrase` opens, checked against the key itself.

    The agent's cache is cleared first, so an earlier (right) passphrase cannot stand in for this one.
    Raises CredentialsError for a wrong passphrase, RecipientKeyError if no secret key is here.
    """
    wanted = [normalise_fingerprint(f) for f in fingerprints]
    forget_passphrases(gpg, wanted)
    holders = [f for f in wanted if secret_keygrips(gpg, [f])]
    if not holders:
        raise RecipientKeyError(
            "no secret key of this account is on this computer", f"import it into {gpg.home}"
        )
    probe = b"imapcrypt unlock " + secrets.token_hex(16).encode()
    for fingerprint in holders:
        sealed = gpg.encrypt(probe, [fingerprint])
        # Loopback always (an empty passphrase included): a pinentry window must never answer instead.
        opened = run_gpg(gpg, ["--decrypt"], data=sealed, passphrase=passphrase)
        if opened.ok and opened.stdout == probe:
            return fingerprint
    raise CredentialsError("the passphrase is wrong", "type the passphrase of the account's key")
