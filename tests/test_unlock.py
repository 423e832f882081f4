"""keys/unlock.py: the passphrase is checked against the key itself, whatever gpg-agent has cached."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imapcrypt.errors import CredentialsError, DecryptError, RecipientKeyError
from imapcrypt.keys.manage import generate_key
from imapcrypt.keys.unlock import check_passphrase, forget_passphrases
from imapcrypt.openpgp.gnupg import GnuPG
from tests.fixtures.keys import make_home, remove_home

RIGHT = "correct horse battery"


@pytest.fixture
def home() -> Iterator[GnuPG]:
    gpg = make_home("icul-")
    yield gpg
    remove_home(gpg)


def test_a_cached_passphrase_never_stands_in_for_a_wrong_one(home: GnuPG) -> None:
    fingerprint = generate_key(home, "Ann <ann@example.org>", RIGHT).fingerprint
    sealed = home.encrypt(b"probe", [fingerprint])
    assert home.decrypt(sealed, RIGHT) == b"probe"
    # The agent now caches the passphrase: plain gpg would open this with any passphrase at all.
    assert home.decrypt(sealed, "wrong") == b"probe"
    with pytest.raises(CredentialsError, match="passphrase is wrong"):
        check_passphrase(home, [fingerprint], "wrong")
    with pytest.raises(CredentialsError):
        check_passphrase(home, [fingerprint], "")
    assert check_passphrase(home, [fingerprint], RIGHT) == fingerprint


def test_lock_makes_the_agent_ask_again(home: GnuPG) -> None:
    fingerprint = generate_key(home, "Bob <bob@example.org>", RIGHT).fingerprint
    check_passphrase(home, [fingerprint], RIGHT)
    forget_passphrases(home, [fingerprint])
    with pytest.raises(DecryptError, match="passphrase"):
        home.decrypt(home.encrypt(b"probe", [fingerprint]), "wrong")


def test_no_secret_key_here_is_said_so(home: GnuPG) -> None:
    fingerprint = generate_key(home, "Cy <cy@example.org>", RIGHT).fingerprint
    forget_passphrases(home, [])  # nothing to forget is fine
    with pytest.raises(RecipientKeyError, match="no secret key"):
        check_passphrase(home, ["0" * 40], RIGHT)
    assert check_passphrase(home, ["0" * 40, fingerprint], RIGHT) == fingerprint
