"""``python -m annotation serve|push|pull ...``: an alias of ``gcot review ...``."""

import sys

from core import env

env.apply()

from annotation.cli import Review  # noqa: E402
from core.cli import single  # noqa: E402

if __name__ == "__main__":
    sys.exit(single(Review, "python -m annotation"))
