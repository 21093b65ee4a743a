"""The flow node's inference loop without ROS: latest-only input, lookahead, drops and resets.

docs/architecture.md ("Data flow in the node") describes it; the node (lfn_ros.nodes.flow_node)
only supplies three callables and publishes what comes out, so everything here is tested in one
process, at full speed and under overload (test/test_pipeline.py).

- :meth:`FlowPipeline.submit` (the subscription callback's thread) puts a message into a
  :class:`LatestSlot`: an unread message it replaces counts as dropped. The callback never
  converts anything and never waits for inference.
- :meth:`FlowPipeline.run` (the inference thread) takes the slot, converts and stages the frame,
  runs the engine, and while the device computes converts and stages the next frame if one is
  already waiting (its upload overlaps this frame's compute); then waits and publishes. A staged
  frame that a newer message overtakes before its turn is dropped too, so at every moment
  ``received == processed + dropped + in flight + first frames + skipped``.
- When the engine is slower than the camera, a frame that has waited more than
  ``stale_frame_age`` camera periods when its turn comes gives way to the next frame if that
  arrives within the rest of the period (plus half a period of slack): the engine then computes
  fresh frames instead of ones that waited half a period on average (:meth:`FlowPipeline._fresher`).
- With the two-scale cascade and ``adaptive_cascade`` on, a frame runs in one pass while the
  cascaded turns are longer than the camera's period (lfn_ros.governor.CascadeGovernor).
- A new sequence starts (nothing is published for its first frame) at start-up, when the input
  encoding changes (checked here), when the resolution changes or a stamp is not after the
  previous one (checked by the engine), and after the device ran out of memory.
- A message that cannot be converted, and any engine failure, is reported through ``report`` and
  skipped; the loop goes on.

Callables given by the owner:
    convert(message) -> InputFrame, raising InputError for an unusable message;
    publish(frame, result, settings) for every flow result;
    settings() -> dict of the current runtime switches (read once per frame; the pipeline uses
        ``publish_occlusion`` and ``want_points`` to decide whether the occlusion mask is computed).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .engine import EngineError, FlowEngine, FlowOutOfMemory
from .governor import CascadeGovernor


class InputError(ValueError):
    """A message that cannot become an RGB frame (the text says why)."""


@dataclass
class InputFrame:
    """A converted message: rgb (H, W, 3) uint8; encoding (a change starts a new sequence);
    header (handed back to ``publish``, e.g. a std_msgs/Header); stamp (opaque, returned as the
    result's ``stamp`` and the next result's ``previous_stamp``); seconds (the stamp in seconds,
    for the engine's time-order check; None: no check)."""

    rgb: object
    encoding: str
    header: object = None
    stamp: object = None
    seconds: float | None = None


@dataclass
class Frame:
    """A frame on its way through the engine."""

    header: object
    encoding: str
    size: tuple
    staged: object
    arrived: float | None = None  # when its message reached the slot (LatestSlot's clock, s)


@dataclass
class PipelineCounts:
    """What happened to every message handed to :meth:`FlowPipeline.submit`."""

    received: int = 0
    processed: int = 0  # results published
    first_frames: int = 0  # frames that started a sequence (nothing to publish)
    skipped: int = 0  # unusable messages and engine failures
    resets: int = 0  # sequences started after the first one
    fresher: int = 0  # stale frames dropped for the next one (stale_frame_age; also in dropped)
    one_pass: int = 0  # results of a two-scale engine that ran in one pass (adaptive_cascade)
    events: list = field(default_factory=list)  # (kind, text) of bad input and failures, newest last


class LatestSlot:
    """A single-item mailbox: put() replaces an unread item (counted in ``dropped``).

    It also notes when each item arrived (``clock()``, seconds) and the median interval between
    the last puts: the camera's period as the node sees it, which the stale-frame rule uses."""

    #: Intervals kept for the period's median.
    INTERVALS = 16

    def __init__(self, clock=time.monotonic) -> None:
        self._cond = threading.Condition()
        self._clock = clock
        self._item = None
        self._arrived = None
        self._last_put = None
        self._intervals: deque = deque(maxlen=self.INTERVALS)
        self.dropped = 0

    def put(self, item) -> None:
        now = self._clock()
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            if self._last_put is not None:
                self._intervals.append(now - self._last_put)
            self._item, self._arrived, self._last_put = item, now, now
            self._cond.notify()

    def take(self, timeout: float | None = None):
        """The item (clearing the slot), waiting up to ``timeout`` s; None if there is none."""
        return self.take_with_arrival(timeout)[0]

    def take_with_arrival(self, timeout: float | None = None) -> tuple:
        """(item, the clock() time it arrived), or (None, None) after waiting up to ``timeout`` s."""
        with self._cond:
            if self._item is None and timeout:
                self._cond.wait(timeout)
            item, arrived, self._item = self._item, self._arrived, None
            return item, arrived

    def ready(self) -> bool:
        with self._cond:
            return self._item is not None

    def count_drop(self) -> None:
        with self._cond:
            self.dropped += 1

    def period(self) -> float | None:
        """Median interval between the last puts (s); None before 4 intervals were seen."""
        with self._cond:
            intervals = sorted(self._intervals)
        return intervals[len(intervals) // 2] if len(intervals) >= 4 else None

    def now(self) -> float:
        return self._clock()


class FlowPipeline:
    """The inference loop (module docstring). ``report(kind, text)`` receives "bad_input",
    "failure" and "reset" events; ``on_result`` is ``publish``."""

    def __init__(self, engine: FlowEngine, convert, publish, settings, report=None) -> None:
        self.engine = engine
        self._convert = convert
        self._publish = publish
        self._settings = settings
        self._report = report or (lambda kind, text: None)
        self.slot = LatestSlot()
        self.counts = PipelineCounts()
        self._lock = threading.Lock()
        self._last_encoding = None
        self._started = False
        self.turns: deque = deque(maxlen=8)  # durations of the last turns (process + publish), slot clock s
        self.governor = CascadeGovernor()
        self._published_mode = None  # the cascade of the flow published in this turn, if any

    @property
    def dropped(self) -> int:
        return self.slot.dropped

    # ------------------------------------------------------------------ input
    def submit(self, message) -> None:
        """Hand over a message (any thread; never blocks on inference)."""
        with self._lock:
            self.counts.received += 1
        self.slot.put(message)

    # ------------------------------------------------------------------ loop
    def run(self, stop: threading.Event, idle_timeout: float = 0.1) -> None:
        """Process messages until ``stop`` is set."""
        ahead = None
        while not stop.is_set():
            ahead = self.step(ahead, idle_timeout)

    def step(self, ahead: Frame | None = None, timeout: float | None = 0.1) -> Frame | None:
        """One turn of the loop: process ``ahead`` (the frame staged during the previous turn)
        unless a newer message overtook it, else the slot's message; a stale one gives way to
        the next frame when that is about to come (:meth:`_fresher`). Returns the next staged
        frame, if one was prepared while this one computed."""
        frame = None
        if ahead is not None:
            if self.slot.ready():
                self.slot.count_drop()  # a newer message came after `ahead` was staged
            else:
                frame = ahead
        if frame is None:
            message, arrived = self.slot.take_with_arrival(timeout=timeout)
            if message is None:
                return None
        else:
            message, arrived = None, frame.arrived
        settings = dict(self._settings())  # once per turn: the node's reads rclpy's subscription counts
        period = self.slot.period()  # once per turn too: the stale-frame rule and the governor share it
        fresher = self._fresher(arrived, float(settings.get("stale_frame_age", 1.0)), period)
        if fresher is not None:
            message, arrived = fresher
        if message is not None:
            frame = self.prepare(message, arrived)
            if frame is None:
                return None
        one_pass = self._one_pass(settings, period)
        start = self.slot.now()
        self._published_mode = None
        ahead = self.process(frame, settings, one_pass)
        duration = self.slot.now() - start
        self.turns.append(duration)
        if self._published_mode is not None and self.engine.cascade != "none":
            self.governor.record(self._published_mode, duration)
        return ahead

    def _one_pass(self, settings: dict, period: float | None) -> bool:
        """Whether this turn's frame runs in one pass (lfn_ros.governor): only a two-scale engine
        with ``adaptive_cascade`` on; switching it off starts the governor afresh."""
        if self.engine.cascade == "none":
            return False
        if not settings.get("adaptive_cascade", True):
            if self.governor.switches:
                self.governor = CascadeGovernor()
            return False
        return self.governor.one_pass(period)

    def _fresher(self, arrived: float | None, limit: float, period: float | None) -> tuple | None:
        """(message, arrived) of the next frame when the one about to run is stale, else None.

        When the engine is slower than the camera, the newest frame has waited, on average, half
        a camera period when the engine gets free: that wait is most of the node's latency over
        its engine (issue 16; docs/benchmarks.md). A frame older than ``stale_frame_age`` camera
        periods therefore gives way to the next one, which is due within the rest of the period.
        Only then: while the loop's turns (median of the last 8) are shorter than the period,
        every frame gets its flow, and skipping one would lose it; a sender that is not a camera
        (one frame, then silence until its flow comes) never has a period shorter than a turn.
        The wait is bounded (half a period past when the frame is due, at most 0.25 s, so a
        stop request is seen soon). ``stale_frame_age`` 1 (or more) never waits. ``period``: the
        camera's (:meth:`LatestSlot.period`)."""
        if arrived is None or period is None or limit >= 1.0 or len(self.turns) < 3:
            return None
        if sorted(self.turns)[len(self.turns) // 2] <= period:  # the engine keeps up with the camera
            return None
        age = self.slot.now() - arrived
        if age <= limit * period:
            return None
        message, newer = self.slot.take_with_arrival(timeout=min(max(period - age, 0.0) + 0.5 * period, 0.25))
        if message is None:
            return None
        self.slot.count_drop()  # the stale frame
        with self._lock:
            self.counts.fresher += 1
        return message, newer

    def prepare(self, message, arrived: float | None = None) -> Frame | None:
        """Convert and stage one message; None (reported) when it is unusable."""
        try:
            item = self._convert(message)
            staged = self.engine.stage(item.rgb, stamp=item.stamp, seconds=item.seconds)
        except FlowOutOfMemory as exc:
            self._skip("failure", f"out of device memory uploading a frame; the sequence restarts: {exc}")
            self._note_reset()
            return None
        except (InputError, EngineError) as exc:  # EngineError: e.g. smaller than 32x32
            self._skip("bad_input", str(exc))
            return None
        return Frame(header=item.header, encoding=item.encoding, size=item.rgb.shape[:2], staged=staged, arrived=arrived)

    def process(self, frame: Frame, settings: dict | None = None, one_pass: bool = False) -> Frame | None:
        """Run one frame and publish its flow. Returns the next frame, already staged, when one
        was waiting (its conversion and upload overlapped this frame's compute). ``settings``: the
        turn's runtime switches, read once by :meth:`step` (None: read them here); ``one_pass``:
        see :meth:`FlowEngine.run`."""
        settings = dict(self._settings()) if settings is None else settings
        engine = self.engine
        if self._last_encoding not in (None, frame.encoding):
            self._report("reset", f"encoding changed from {self._last_encoding} to {frame.encoding}: starting a new sequence")
            engine.reset()
        self._last_encoding = frame.encoding
        engine.configure(occlusion=bool(settings.get("publish_occlusion", True) or settings.get("want_points", False)))
        size = f"{frame.size[1]}x{frame.size[0]}"
        ok, pending = self._attempt(lambda: engine.run(frame.staged, one_pass=one_pass), "on", size)  # resets on a size change or stamp going back
        if not ok:
            return None
        message, arrived = self.slot.take_with_arrival()
        ahead = self.prepare(message, arrived) if message is not None else None  # overlaps the device's work
        ok, result = self._attempt(pending.wait, "finishing", size)
        if not ok:
            return ahead
        if result is None:  # the first frame of a sequence
            with self._lock:
                self.counts.first_frames += 1
                if self._started:
                    self.counts.resets += 1
                self._started = True
            return ahead
        self._started = True
        with self._lock:
            self.counts.processed += 1
            if result.cascade == "none" and engine.cascade != "none":
                self.counts.one_pass += 1
        self._published_mode = result.cascade
        self._publish(frame, result, settings)
        return ahead

    def _attempt(self, call, what: str, size: str):
        """(True, call()), or (False, None) after reporting an engine failure; running out of
        device memory also counts the restart the engine made."""
        try:
            return True, call()
        except FlowOutOfMemory as exc:
            self._skip("failure", f"out of device memory {what} a {size} frame; the sequence restarts: {exc}")
            self._note_reset()
        except (EngineError, RuntimeError, ValueError) as exc:
            self._skip("failure", f"flow engine failed {what} a {size} frame: {type(exc).__name__}: {exc}")
        return False, None

    # ------------------------------------------------------------------ bookkeeping
    def _skip(self, kind: str, text: str) -> None:
        with self._lock:
            self.counts.skipped += 1
            self.counts.events = (self.counts.events + [(kind, text)])[-20:]
        self._report(kind, text)

    def _note_reset(self) -> None:
        """After an out-of-memory error the next frame starts a sequence: counted as a reset then."""
        self._started = True
