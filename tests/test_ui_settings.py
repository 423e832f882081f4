"""Settings in the wizard's words: durations, the server's folder checklist, sentences, the whole key."""

from __future__ import annotations

from pathlib import Path

import pytest
from imapcrypt_ui.settings import SettingsDialog
from pytestqt.qtbot import QtBot

from imapcrypt.config.model import Config, load_config
from tests.fixtures.engine import Rig

WAIT_MS = 30_000


def test_settings_speak_the_wizards_words_and_save_the_ticked_folders(
    qtbot: QtBot, rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # autostart is written under it
    path = rig.write_config()
    saved: list[Config] = []
    dialog = SettingsDialog(load_config(path), saved.append)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.folders_listed, timeout=WAIT_MS):
        dialog.show()
    listed = [dialog.folders.item(i).text() for i in range(dialog.folders.count())]
    assert listed[0] == "INBOX"
    assert listed == ["INBOX", "Sent", "Trash"]  # the server's, INBOX first
    assert dialog.folders.chosen() == ("INBOX",)
    assert dialog.grace.text() == "none: encrypt new mail at once"
    assert dialog.poll.text() == "60 seconds"
    assert dialog.original.currentText().startswith("Delete it for good")
    assert dialog.security.currentText() == "None: only to a server on this computer"
    fingerprint = rig.account.recipients[0]
    assert dialog.recipients.text().replace(" ", "") == fingerprint  # whole, in groups of four

    item = dialog.folders.item(listed.index("Sent"))
    item.setCheckState(item.checkState().Checked)
    dialog.grace.setValue(15)
    dialog.save()
    assert saved
    account = load_config(path).account(None)
    assert account.folders == ("INBOX", "Sent")
    assert account.grace_minutes == 15
    assert account.original == "purge"
