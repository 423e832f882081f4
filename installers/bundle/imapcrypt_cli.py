"""The frozen `imapcrypt` command: the console entry point `imapcrypt.cli:main`, unchanged."""

import sys

from imapcrypt.cli import main

sys.exit(main())
