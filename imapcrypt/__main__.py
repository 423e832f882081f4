"""`python -m imapcrypt` is the `imapcrypt` command."""

import sys

from imapcrypt.cli import main

sys.exit(main())
