"""Labels that show text as text (docs/tray.md).

A QLabel guesses whether its text is rich text, and server answers and error messages reach labels:
a server that answers `NO <img src="/dev/zero">` would have the label load and decode a file. Every
label of the tray app that shows words from elsewhere is made here, with the guess turned off.
"""

from __future__ import annotations

from imapcrypt_ui.qt import QLabel, Qt


def plain_label(text: str = "") -> QLabel:
    """A QLabel that shows `text`, and anything set later, as plain text, never as markup."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label
