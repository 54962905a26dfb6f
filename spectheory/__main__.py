"""``python -m spectheory``: the command line (see :mod:`spectheory.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
