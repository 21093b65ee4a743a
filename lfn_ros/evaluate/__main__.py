"""``python -m lfn_ros.evaluate ...``: the same arguments as ``lfn-ros evaluate``."""

import sys

from .cli import main

sys.exit(main())
