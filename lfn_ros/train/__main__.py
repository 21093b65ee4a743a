"""``python -m lfn_ros.train`` (what torchrun starts): the same options as ``lfn-ros train``."""

import sys

from .cli import main

sys.exit(main())
