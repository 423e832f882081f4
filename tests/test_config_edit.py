"""Editing one account's recipients keeps every other byte of the user's configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapcrypt.config.edit import add_recipient, remove_recipient, replace_recipient, set_recipients
from imapcrypt.config.model import load_config
from imapcrypt.errors import ConfigError, RecipientKeyError

A = "A" * 40
B = "B" * 40
C = "C" * 40

ORIGINAL = f'''# my mail setup
data_dir = "/tmp/imapcrypt-test-data"   # not the default

[gnupg]
home = "/tmp/imapcrypt-test-gnupg"

[[account]]
name = "work"
host = "imap.example.org"
username = "me@example.org"
# The note below mentions recipients = ["{C}"] but is a comment.
password_command = """pass show "mail/[[account]]" # not a comment"""
recipients = ["{A}"]   # laptop key
folders = ["INBOX", "Lists/[rust]"]

[[account]]
name = "home"
host = "imap.example.net"
username = "me@example.net"
recipients = [
    # the laptop
    "{A}",
    "{B}",  # escrow: the lawyer's key
    # end of list
]
'''


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL)
    path.chmod(0o640)
    return path


def test_single_line_list_is_replaced_and_nothing_else_changes(config_file: Path) -> None:
    config = set_recipients(config_file, "work", [B.lower(), A])
    assert config.account("work").recipients == (B, A)
    assert config.account("home").recipients == (A, B)
    expected = ORIGINAL.replace(
        f'recipients = ["{A}"]   # laptop key', f'recipients = ["{B}", "{A}"]   # laptop key'
    )
    assert config_file.read_text() == expected
    assert load_config(config_file) == config
    assert config_file.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in config_file.parent.iterdir()] == ["config.toml"]


def test_multi_line_list_keeps_the_lines_and_comments_of_kept_keys(config_file: Path) -> None:
    replace_recipient(config_file, "home", A, C)
    text = config_file.read_text()
    assert text.startswith(ORIGINAL.split('name = "home"', maxsplit=1)[0])  # the first account untouched
    assert text.endswith(f'''recipients = [
    "{C}",
    "{B}",  # escrow: the lawyer's key
    # end of list
]
''')
    assert load_config(config_file).account("home").recipients == (C, B)


def test_add_and_remove(config_file: Path) -> None:
    assert add_recipient(config_file, "work", C).account("work").recipients == (A, C)
    unchanged = config_file.read_text()
    assert add_recipient(config_file, "work", C.lower()).account("work").recipients == (A, C)
    assert config_file.read_text() == unchanged
    assert remove_recipient(config_file, "work", A).account("work").recipients == (C,)
    with pytest.raises(ConfigError, match="only recipient"):
        remove_recipient(config_file, "work", C)
    with pytest.raises(ConfigError, match="is not a recipient"):
        remove_recipient(config_file, "home", C)
    assert load_config(config_file).account("home").recipients == (A, B)


def test_refusals_leave_the_file_untouched(config_file: Path) -> None:
    with pytest.raises(ConfigError, match="no \\[\\[account\\]\\] named 'nope'"):
        set_recipients(config_file, "nope", [A])
    with pytest.raises(ConfigError, match="at least one recipient"):
        set_recipients(config_file, "work", [])
    with pytest.raises(RecipientKeyError, match="not a full key fingerprint"):
        set_recipients(config_file, "work", ["ABCD"])
    assert config_file.read_text() == ORIGINAL


def test_list_in_another_layout_is_rewritten_one_per_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[[account]]\nname = "x"\nhost = "h"\nusername = "u"\nrecipients = ["{A}",\n  "{B}"]\n')
    set_recipients(path, "x", [B, C])
    assert path.read_text() == (
        f'[[account]]\nname = "x"\nhost = "h"\nusername = "u"\nrecipients = [\n    "{B}",\n    "{C}",\n]\n'
    )
