"""The command line: what users and their scripts see (docs/cli.md).

Bad input ends in one line on stderr and a documented non-zero exit code, with nothing touched on
the server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imapcrypt.cli.main import main
from tests.fixtures.corpus import varied_seeds
from tests.fixtures.dovecot import free_loopback_port
from tests.fixtures.engine import Rig
from tests.fixtures.tls import TlsDovecot


def _fails_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], code: int) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("imapcrypt: ")
    assert "\n" not in err, err
    return err


def test_version_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "imapcrypt", "--version"], capture_output=True, check=True)
    assert done.stdout.startswith(b"imapcrypt ")


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for command in ("run", "backlog", "restore", "status"):
        assert command in out


def test_backlog_then_status_then_restore(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    seeds = varied_seeds(4)
    rig.mailbox.seed(seeds)
    config = str(rig.write_config())
    assert main(["--config", config, "backlog", "--dry-run"]) == 0
    assert "4 would be encrypted" in capsys.readouterr().out
    assert main(["--config", config, "backlog"]) == 0
    assert "test/INBOX: 4 encrypted" in capsys.readouterr().out
    assert main(["--config", config, "status"]) == 0
    assert "test/INBOX: 4 encrypted, 0 waiting" in capsys.readouterr().out
    assert main(["--config", config, "run", "--once"]) == 0
    assert main(["--config", config, "restore"]) == 0
    assert "4 restored" in capsys.readouterr().out
    assert sorted(m.body for m in rig.mailbox.state()) == sorted(s.raw for s in seeds)


def test_wrong_password_touches_nothing(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    rig.mailbox.seed(varied_seeds(2))
    before = rig.mailbox.state()
    config = rig.write_config()
    config.write_text(config.read_text().replace(rig.mailbox.password, "wrong"))
    err = _fails_with_one_line(capsys, ["--config", str(config), "backlog"], 3)
    assert "refused the login" in err
    assert "wrong" not in err
    assert rig.mailbox.state() == before


def test_unreachable_host_is_one_line(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    config = rig.with_policy(port=free_loopback_port()).write_config()
    err = _fails_with_one_line(capsys, ["--config", str(config), "run", "--once"], 4)
    assert "cannot reach 127.0.0.1" in err


def test_self_signed_certificate_is_refused_with_its_fingerprint(
    rig: Rig, tls_dovecot: TlsDovecot, capsys: pytest.CaptureFixture[str]
) -> None:
    config = rig.with_policy(security="tls", port=tls_dovecot.tls_port).write_config()
    err = _fails_with_one_line(capsys, ["--config", str(config), "run", "--once"], 4)
    assert "not trusted" in err
    assert tls_dovecot.fingerprint_sha256 in err


def test_self_signed_certificate_is_accepted_when_its_ca_is_configured(
    rig: Rig, tls_dovecot: TlsDovecot, capsys: pytest.CaptureFixture[str]
) -> None:
    config = rig.with_policy(security="tls", port=tls_dovecot.tls_port).write_config(
        ca_file=f'"{tls_dovecot.cert_path}"'
    )
    assert main(["--config", str(config), "run", "--once"]) != 4
    assert "not trusted" not in capsys.readouterr().err


def test_unknown_recipient_key_touches_nothing(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    rig.mailbox.seed(varied_seeds(2))
    before = rig.mailbox.state()
    config = rig.with_policy(recipients=("A" * 40,)).write_config()
    err = _fails_with_one_line(capsys, ["--config", str(config), "backlog"], 5)
    assert "A" * 40 in err
    assert rig.mailbox.state() == before


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "[[account]]\nname = 'a'\nhost = 'h'\nusername = 'u'\nrecipients = ['x']\ncolour = 'red'\n",
            "colour",
        ),
        ("[[account]]\nname = 'a'\nhost = 'h'\nusername = 'u'\n", "recipients"),
        ("[[account]]\nname = 'a'\nhost = 'h'\nusername = 'u'\nrecipients = ['x']\nport = 'x'\n", "port"),
        (
            "[[account]]\nname = 'a'\nhost = 'imap.example.org'\nusername = 'u'\nrecipients = ['x']\n"
            "security = 'plain'\n",
            "security",
        ),
        (
            "[[account]]\nname = 'a'\nhost = 'h'\nusername = 'u'\nrecipients = ['x']\n"
            "outer_headers = ['From', 'Subject']\n",
            "outer_headers",
        ),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_malformed_config_names_the_key_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, named: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    err = _fails_with_one_line(capsys, ["--config", str(config), "status"], 2)
    assert named in err
    assert str(config) in err


def test_missing_config_says_how_to_make_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails_with_one_line(capsys, ["--config", str(tmp_path / "none.toml"), "status"], 2)
    assert "imapcrypt init" in err
