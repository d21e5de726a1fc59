"""``python -m pipeline ...``: a thin alias of the ``gcot`` command (gcot/cli.py)."""

import sys

from gcot.cli import main

if __name__ == "__main__":
    sys.exit(main())
