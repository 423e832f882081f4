"""`python -m imapcrypt_ui` starts the tray app (what the autostart entry falls back to)."""

import sys

from imapcrypt_ui.app import main

sys.exit(main())
