"""The frozen `imapcrypt-tray`: the GUI entry point `imapcrypt_ui.app:main`, unchanged."""

import sys

from imapcrypt_ui.app import main

sys.exit(main())
