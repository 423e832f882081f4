"""Labels that show text as text (docs/tray.md).

A QLabel guesses whether its text is rich text, and server answers and error messages reach labels:
a server that answers `NO <img src="/dev/zero">` would have the label load and decode a file. Every
label of the tray app that shows words from elsewhere is made here, with the guess turned off.
"""

from __future__ import annotations

import html

from imapcrypt_ui.qt import QLabel, Qt

# Lookalikes for the two characters that open and close markup, for desktop notifications.
_NO_TAGS = str.maketrans({"<": "\u2039", ">": "\u203a"})


def plain_label(text: str = "") -> QLabel:
    """A QLabel that shows `text`, and anything set later, as plain text, never as markup."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def plain_tooltip(text: str) -> str:
    """`text` as a tooltip that shows it as written: Qt guesses rich text in tooltips too, and has no
    switch for them, so the text is escaped inside an explicit paragraph (line breaks kept)."""
    return '<p style="white-space:pre-wrap">' + html.escape(text) + "</p>"


def plain_notification(text: str) -> str:
    """`text` for a desktop notification, whose server may read markup (and load `<img>` files):
    angle brackets become lookalikes, which read the same on servers without markup."""
    return text.translate(_NO_TAGS)
