"""PendingFlow: a frame's queued work, and the FlowResult it turns into (stage timings included)."""

from __future__ import annotations

import time

from .clock import StageClock
from .types import STAGES, FlowResult, Staged


class PendingFlow:
    """Work queued by :meth:`FlowEngine.run`; :meth:`wait` returns the :class:`FlowResult`."""

    def __init__(self, engine, staged: Staged, clock: StageClock, outputs=None, done=None, previous_stamp=None,
                 refinement=None) -> None:
        self._engine = engine
        self._staged = staged
        self._clock = clock
        self._outputs = outputs  # (flow_host, occlusion_host or None, cascade mode), or None for a first frame
        self._done = done
        self._previous_stamp = previous_stamp
        self._refinement = refinement  # (refiner, grey 1, grey 2) or None (lfn_ros.ops.refine)

    def wait(self) -> FlowResult | None:
        """Block until the download finished; None when this was a stream's first frame."""
        if self._outputs is None:
            return None
        with self._engine._oom_guard("download", self._staged.size):
            if self._done is not None:
                self._done.synchronize()
        flow, occlusion, cascade = self._outputs
        # Views, not copies: every frame gets freshly allocated output tensors (pinned ones come
        # from torch's caching host allocator), and a numpy view keeps its tensor alive, so no
        # later frame can write into a result that was handed out. The refinement makes a new array.
        flow, refine_ms = flow.numpy(), 0.0
        if self._refinement is not None:
            refiner, grey1, grey2 = self._refinement
            start = time.perf_counter()
            flow = refiner(flow, grey1, grey2)
            refine_ms = (time.perf_counter() - start) * 1000.0
        return FlowResult(flow=flow, occlusion=occlusion.numpy() if occlusion is not None else None,
                          timings=self._timings(refine_ms), stamp=self._staged.stamp, previous_stamp=self._previous_stamp,
                          cascade=cascade)

    def _timings(self, refine_ms: float) -> dict:
        clock, events = self._clock, self._staged.events
        if "upload_start" in events:
            upload = float(events["upload_start"].elapsed_time(events["upload_end"]))
        else:
            upload = self._staged.host_ms.get("upload", 0.0)
        marks = ("start", "preprocessed", "features", "decoded", "postprocessed", "downloaded")
        timings = {"upload": upload, "refine": refine_ms}
        for stage, (start, end) in zip(STAGES[1:], zip(marks, marks[1:])):
            timings[stage] = clock.elapsed_ms(start, end)
        timings["compute"] = sum(timings[s] for s in STAGES)
        return timings
