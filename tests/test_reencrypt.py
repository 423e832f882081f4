"""Key rotation: new mail goes to the new key, and `reencrypt` moves old mail onto it safely."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imapcrypt.cli.main import main
from imapcrypt.errors import TransientError
from imapcrypt.keys.manage import encryption_key_ids
from imapcrypt.message import envelope
from imapcrypt.openpgp.gnupg import session_key_ids
from tests.fixtures.corpus import varied_seeds
from tests.fixtures.engine import Rig, assert_exactly_once, make_rig
from tests.fixtures.gnupg_home import GnupgHome, make_gnupg_home, remove_gnupg_home
from tests.fixtures.keys import passphrase_fd
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.proxy import FaultProxy
from tests.samples import load


@pytest.fixture
def own_home() -> Iterator[GnupgHome]:
    """A GnuPG home of this test's own, since the test adds and deletes keys."""
    home = make_gnupg_home("Old <old@example.org>")
    yield home
    remove_gnupg_home(home)


def _new_key(home: GnupgHome) -> str:
    home.gpg(
        "--passphrase", "", "--quick-gen-key", "New <new@example.org>", "future-default", "default", "never"
    )
    listing = home.gpg("--with-colons", "--list-secret-keys", "new@example.org").decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def _sealed_to(rig: Rig, fingerprint: str) -> int:
    wanted = encryption_key_ids(rig.gpg, [fingerprint])
    return sum(
        1
        for m in rig.mailbox.state()
        if envelope.classify(m.body) is envelope.Kind.OURS
        and session_key_ids(m.body[m.body.find(b"-----BEGIN PGP MESSAGE") :]) == wanted
    )


def test_rotate_then_reencrypt_moves_every_message_to_the_new_key(
    mailbox: Mailbox,
    own_home: GnupgHome,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault_proxy_factory: Callable[[int], FaultProxy],
) -> None:
    rig = make_rig(mailbox, own_home, tmp_path).with_policy(batch_size=4)
    seeds = varied_seeds(10, seed=30)
    rig.mailbox.seed(seeds)
    config = str(rig.write_config(batch_size="4"))
    assert main(["--config", config, "backlog"]) == 0
    old = own_home.fingerprint
    assert _sealed_to(rig, old) == 10

    new = _new_key(own_home)
    rotate = ["keys", "rotate", "--to", new, "--no-backup", "--passphrase-fd", passphrase_fd()]
    assert main(["--config", config, *rotate]) == 0
    assert new in Path(config).read_text()
    assert main(["--config", config, "keys", "self-test", "--passphrase-fd", passphrase_fd()]) == 0
    late = varied_seeds(2, seed=31)
    rig.mailbox.seed(late)
    assert main(["--config", config, "run", "--once"]) == 0
    assert _sealed_to(rig, new) == 2  # new mail goes to the new key

    rotated = rig.with_policy(recipients=(new,))
    proxy = fault_proxy_factory(rig.account.port)
    proxy.cut_after("APPEND", 1)  # a fault in the middle of the re-encryption
    with pytest.raises(TransientError), rotated.at_port(proxy.port).engine() as engine:
        engine.reencrypt_folder("INBOX")
    with rotated.engine() as engine:
        engine.open_folder("INBOX")  # the recovery run
    assert_exactly_once(rig, seeds + late)

    capsys.readouterr()
    assert main(["--config", config, "reencrypt"]) == 0
    assert "test/INBOX:" in capsys.readouterr().out
    assert _sealed_to(rig, new) == 12
    assert _sealed_to(rig, old) == 0
    # Every message now opens without the old secret key.
    own_home.gpg("--delete-secret-keys", old)
    assert_exactly_once(rig, seeds + late)
    assert main(["--config", config, "reencrypt"]) == 0  # nothing left to do, nothing touched
    assert "12 already encrypted" in capsys.readouterr().out
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={"GNUPGHOME": str(own_home.path)}, check=False)


def test_wrapped_sender_encrypted_mail_is_reencrypted_too(
    mailbox: Mailbox, own_home: GnupgHome, tmp_path: Path
) -> None:
    rig = make_rig(mailbox, own_home, tmp_path)
    wrapped = load("encrypted_pgp_mime")
    rig.mailbox.append(wrapped, flags=[b"\\Seen"])
    with rig.with_policy(encrypt_encrypted=True).engine() as engine:
        assert engine.encrypt_folder("INBOX", backlog=True).encrypted == 1
    new = _new_key(own_home)
    # The policy has since gone back to leaving such mail alone: what is sealed is resealed anyway.
    with rig.with_policy(recipients=(new,)).engine() as engine:
        report = engine.reencrypt_folder("INBOX")
    assert (report.encrypted, report.failed) == (1, 0)
    assert _sealed_to(rig, new) == 1
    [copy] = rig.mailbox.state()
    assert envelope.restore(copy.body, rig.gpg) == wrapped
