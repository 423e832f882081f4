"""The frozen `imapcrypt` command: the console entry point `imapcrypt.cli.main:main`, unchanged."""

import sys

from imapcrypt.cli.main import main

sys.exit(main())
