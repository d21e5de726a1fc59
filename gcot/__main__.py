"""``python -m gcot ...``: the ``gcot`` command."""

import sys

from gcot.cli import main

if __name__ == "__main__":
    sys.exit(main())
