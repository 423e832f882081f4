"""`imapcrypt serve` on the command line: the local password, and a real process a client logs in to."""

from __future__ import annotations

import imaplib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from imapcrypt.cli.main import main
from tests.fixtures.dovecot import free_loopback_port
from tests.fixtures.engine import Rig


def test_show_password_is_stable_and_kept_only_for_the_user(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(rig.write_config())
    assert main(["--config", config, "serve", "--show-password"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["--config", config, "serve", "--show-password"]) == 0
    assert capsys.readouterr().out.strip() == first
    assert len(first) >= 20
    # The tests run without a keyring (conftest): the documented fallback is a file only the user reads.
    kept = rig.data_dir / "serve-password"
    assert kept.read_text().strip() == first
    assert kept.stat().st_mode & 0o777 == 0o600
    assert first not in Path(config).read_text()


def test_serve_runs_until_sigterm_and_a_client_logs_in(rig: Rig) -> None:
    config = str(rig.write_config())
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    shown = subprocess.run(
        [sys.executable, "-m", "imapcrypt", "--config", config, "serve", "--show-password"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    port = free_loopback_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "imapcrypt", "--config", config, "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        while "serving" not in line:
            assert line, process.stderr.read() if process.stderr else "no output"
            line = process.stdout.readline()
        assert re.search(rf"imap://127\.0\.0\.1:{port}/", line)
        client = imaplib.IMAP4("127.0.0.1", port, timeout=60)
        client.login(rig.account.name, shown)
        status, _ = client.select("INBOX")
        assert status == "OK"
        client.logout()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped serving" in err
