"""Logging set-up for the command line and the daemon: one line per event, optionally JSON.

Log lines name events, accounts, folders, UIDs and sizes; never a subject, a body, an address list
or a secret. imapclient's own protocol log (which would show message bytes) is kept off.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import logging.handlers
from pathlib import Path

import platformdirs

from imapcrypt.config.model import APP_NAME
from imapcrypt.private import open_private, private_dir, private_file

LOG_FILE_BYTES = 1_000_000
LOG_FILE_COUNT = 5
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def default_log_file() -> Path:
    """`<platform log dir>/imapcrypt.log` (on Linux under $XDG_STATE_HOME)."""
    return Path(platformdirs.user_log_dir(APP_NAME)) / "imapcrypt.log"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry)


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose every file (the first and each one after a rotation) is created 0600."""

    def _open(self) -> io.TextIOWrapper:
        return open_private(Path(self.baseFilename), self.mode, self.encoding)


def setup_logging(verbose: bool, as_json: bool = False, log_file: Path | None = None) -> None:
    """Log to stderr (warnings, or everything with `verbose`) and, if given, to a rotating file."""
    formatter: logging.Formatter = JsonFormatter() if as_json else logging.Formatter(TEXT_FORMAT)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(formatter)
    root.addHandler(console)
    if log_file is not None:
        private_dir(log_file.parent)
        rotating = _PrivateRotatingFileHandler(
            log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_COUNT, encoding="utf-8"
        )
        private_file(log_file)  # a log written by an older version under the umask
        rotating.setFormatter(formatter)
        root.addHandler(rotating)
    # imapclient logs whole protocol exchanges (message bytes) at DEBUG: never let them through.
    logging.getLogger("imapclient").setLevel(logging.WARNING)
