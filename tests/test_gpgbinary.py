"""Which gpg imapcrypt runs, what it says when there is none, the doctor's gpg line, the About box."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from imapcrypt_ui.controller import Controller
from imapcrypt_ui.tray import Tray
from pytestqt.qtbot import QtBot

from imapcrypt import __version__, autostart
from imapcrypt.doctor.checks import check_gpg
from imapcrypt.errors import ImapcryptError
from imapcrypt.openpgp.binary import add_known_dirs_to_path, find_gpg, install_gpg_hint, known_dirs
from imapcrypt.openpgp.gnupg import GnuPG


def test_the_install_hint_names_each_platforms_way() -> None:
    assert "apt install gnupg" in install_gpg_hint("linux")
    assert "brew install gnupg" in install_gpg_hint("darwin")
    assert "GPG Suite" in install_gpg_hint("darwin")
    assert "Gpg4win" in install_gpg_hint("win32")


def test_doctor_names_the_gpg_it_runs_with_its_version() -> None:
    check = check_gpg()
    assert check.status == "OK"
    assert check.detail.startswith(f"{shutil.which('gpg')}, gpg (GnuPG) 2.")


def test_doctor_without_gpg_fails_with_the_install_hint(tmp_path: Path) -> None:
    check = check_gpg(path=str(tmp_path))
    assert check.status == "FAIL"
    assert "no GnuPG (gpg) on PATH" in check.line()
    assert install_gpg_hint() in check.line()


def test_a_gpg_that_does_not_run_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "gpg"
    broken.write_text("#!/bin/sh\nexit 2\n")
    broken.chmod(0o755)
    assert check_gpg(path=str(tmp_path)).status == "FAIL"
    with pytest.raises(ImapcryptError, match="does not run") as raised:
        GnuPG(tmp_path, binary=str(tmp_path / "missing-gpg"))
    assert raised.value.fix == install_gpg_hint()


def test_known_folders_are_appended_to_path_only_when_they_exist(tmp_path: Path) -> None:
    assert known_dirs("linux") == []
    assert "/opt/homebrew/bin" in known_dirs("darwin")
    assert find_gpg(path=str(tmp_path)) is None
    environ = {"PATH": "/usr/bin"}
    add_known_dirs_to_path(environ, "darwin")
    added = environ["PATH"].split(os.pathsep)[1:]
    assert added == [d for d in known_dirs("darwin") if Path(d).is_dir()]
    assert environ["PATH"].startswith("/usr/bin")


def test_the_frozen_tray_starts_itself_at_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("sys.frozen", True, raising=False)
    monkeypatch.setattr("sys.executable", str(tmp_path / "imapcrypt"))
    assert autostart.tray_command() == [str(tmp_path / "imapcrypt-tray")]


def test_the_about_box_shows_the_version(qtbot: QtBot) -> None:
    tray = Tray(Controller(), object, object, object, lambda: None, use_tray=False)
    assert tray.about_action in tray.menu.actions()
    tray.about_action.trigger()
    box = tray.about_box
    assert box is not None
    qtbot.addWidget(box)
    qtbot.waitExposed(box)
    assert f"imapcrypt {__version__}" in box.text()
    qtbot.waitUntil(lambda: "GnuPG: /" in box.text(), timeout=30_000)  # looked up off the GUI thread
    box.close()
