"""Showing a message's HTML without running it and without fetching anything (docs/tray.md).

Two independent walls: nh3 (the Ammonia sanitiser) keeps only formatting tags and drops scripts,
styles, forms, frames, event handlers and images; and `SafeTextBrowser` refuses every resource its
document asks for, so even markup that slipped through cannot load a remote image, a stylesheet or a
local file. Links are shown but never followed.
"""

from __future__ import annotations

import re

import nh3
from imapcrypt_ui.qt import QByteArray, QImage, QTextBrowser, QTextDocument, QUrl, QWidget

# Formatting only: no img (remote content), no style/link (CSS can fetch), no forms or frames.
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "q", "s", "small", "span",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}
_IMAGE = re.compile(r"<img\b", re.IGNORECASE)


def sanitise(html: str) -> tuple[str, int]:
    """`html` reduced to safe formatting, and how many images were removed (for a notice)."""
    blocked = len(_IMAGE.findall(html))
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return clean, blocked


class SafeTextBrowser(QTextBrowser):
    """A QTextBrowser whose document loads nothing: every resource request is refused and counted."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.refused: list[str] = []  # every URL the document asked for (tests assert on it)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)

    def loadResource(self, kind: int, name: QUrl | str) -> object:
        """Refuse: no image, stylesheet or file is ever loaded, remote or local.

        The answer is an empty resource, never None: None tells Qt to load the resource itself, and
        it reads local files (a `file:` or relative image would appear in the message). For an image
        it must be a null QImage: Qt decodes returned bytes itself and, when they are no image, falls
        back to the file as well (tests/test_reader.py).
        """
        self.refused.append(name.toString() if isinstance(name, QUrl) else name)
        if kind == QTextDocument.ResourceType.ImageResource.value:
            return QImage()
        return QByteArray()

    def show_html(self, html: str) -> int:
        """Show sanitised `html`; returns how many images were blocked."""
        clean, blocked = sanitise(html)
        self.setHtml(clean)
        return blocked
