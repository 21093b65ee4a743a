"""The node's adaptive cascade: two-scale while it keeps up with the camera, one pass while not.

The two-scale cascade (lfn_ros.ops.cascade) buys the large motions: s40+ 24.3 -> 21.9 px and a
per-pair ratio to DIS-medium of 0.899 -> 0.867 on the evaluation data (docs/training.md). It
costs 2.6x the network's work per pair. On a GPU that is a few milliseconds and every frame
should get it. On a two-core CPU the cascaded step is several camera periods long, and the node
then gets flow for 19 % of a 15 Hz camera's frames at p50 386 ms, where one pass gives 37 % at
215 ms (docs/benchmarks.md, "The two-scale cascade's cost"). Issue 16 asks for frames and
latency; a robot team should not have to know its computer's speed to choose. The governor
measures it on the running node and chooses per frame.

The rule, with hysteresis so that it does not flip every frame:

- Two-scale while the loop keeps up: the median of the last :attr:`WINDOW` cascaded turns is no
  longer than the camera's period (:meth:`lfn_ros.pipeline.LatestSlot.period`).
- Otherwise one pass, for at least :attr:`WINDOW` turns. Then back to two-scale when its turn,
  estimated as the one-pass median times the measured two-scale / one-pass ratio, fits in
  :attr:`RETURN_FRACTION` of the period: the camera slowed down, or the machine got faster
  (another process ended).
- No period yet (fewer than 4 intervals seen), or too few turns measured: two-scale, as the
  engine was built.

A pair whose previous frame ran in one pass runs in one pass too (it has no half-grid
encoding): switching back costs one more one-pass frame. No ROS here; test/test_governor.py.
"""

from __future__ import annotations

from collections import deque


def _median(values) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


class CascadeGovernor:
    """Chooses, per frame, between the two-scale cascade and one pass (module docstring).

    Feed it every turn's duration and mode (:meth:`record`), ask it before each frame
    (:meth:`one_pass`). Durations and periods are seconds of one clock."""

    #: Turns per mode whose median is compared with the period.
    WINDOW = 8
    #: Back to two-scale only when its estimated turn fits in this fraction of the period.
    RETURN_FRACTION = 0.85

    def __init__(self) -> None:
        self.turns = {"two-scale": deque(maxlen=self.WINDOW), "none": deque(maxlen=self.WINDOW)}
        self.reduced = False  # running in one pass
        self.ratio: float | None = None  # two-scale turn / one-pass turn, measured around the last switch down
        self.switches = 0  # switches either way (the pipeline starts afresh after adaptive_cascade was off)
        self._dwell = 0  # one-pass turns since the last switch down

    def record(self, mode: str, seconds: float) -> None:
        """One turn that published a flow: the pair's mode ("two-scale" or "none") and its duration."""
        self.turns[mode].append(seconds)
        if mode == "none" and self.reduced:
            self._dwell += 1
            if self._dwell == self.WINDOW and self.turns["two-scale"]:
                # The one-pass turns right after the switch against the cascaded ones right
                # before it: the same machine and camera, so their ratio is the cascade's cost.
                self.ratio = _median(self.turns["two-scale"]) / _median(self.turns["none"])

    def estimated_two_scale(self) -> float | None:
        """The two-scale turn as it would be now (s): the recent one-pass median times
        :attr:`ratio`; None before the ratio was measured."""
        if self.ratio is None or not self.turns["none"]:
            return None
        return _median(self.turns["none"]) * self.ratio

    def one_pass(self, period: float | None) -> bool:
        """Whether the next frame should run in one pass, given the camera's period (s, or None)."""
        if period is None:
            return self.reduced
        if not self.reduced:
            cascaded = self.turns["two-scale"]
            if len(cascaded) >= 3 and _median(cascaded) > period:
                self._switch(True)
        elif self._dwell >= self.WINDOW:
            estimate = self.estimated_two_scale()
            if estimate is not None and estimate <= self.RETURN_FRACTION * period:
                self._switch(False)
        return self.reduced

    def _switch(self, reduced: bool) -> None:
        self.reduced = reduced
        self.switches += 1
        if reduced:
            self._dwell = 0
        else:
            self.turns["two-scale"].clear()  # measured afresh under the new conditions
