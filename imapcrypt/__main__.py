"""`python -m imapcrypt` is the `imapcrypt` command."""

import sys

from imapcrypt.cli.main import main

sys.exit(main())
