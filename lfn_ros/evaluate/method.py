"""What a flow method of the evaluation is (:class:`Method`) and the error of one that cannot run
here; apart from :mod:`.methods` so that the peers' modules (:mod:`.raft`) need not import the
table of methods that builds them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np


class MethodUnavailable(RuntimeError):
    """A method cannot run in this environment (the message says why)."""


@dataclass
class Method:
    """A flow method: ``fn(image1, image2) -> (flow (H, W, 2) float32, occlusion or None)``.

    label: the name printed in tables. sync: called before and after timing (GPU methods).
    """

    name: str
    label: str
    fn: Callable
    sync: Optional[Callable[[], None]] = None
    info: Optional[dict] = None

    def timed(self, image1: np.ndarray, image2: np.ndarray):
        """Run once; returns (flow, occlusion or None, milliseconds of wall clock)."""
        if self.sync:
            self.sync()
        t0 = time.perf_counter()
        flow, occlusion = self.fn(image1, image2)
        if self.sync:
            self.sync()
        return flow, occlusion, (time.perf_counter() - t0) * 1000.0
