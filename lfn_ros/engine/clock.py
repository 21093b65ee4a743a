"""Stage timing: CUDA events on a GPU (no host sync until read), perf_counter on the CPU."""

from __future__ import annotations

import time

import torch


class StageClock:
    """Marks named instants; :meth:`elapsed_ms` between two of them."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: dict = {}

    def mark(self, name: str, stream=None) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(stream)
            self.marks[name] = event
        else:
            self.marks[name] = time.perf_counter()

    def elapsed_ms(self, start: str, end: str) -> float:
        a, b = self.marks[start], self.marks[end]
        if self.cuda:
            return float(a.elapsed_time(b))
        return (b - a) * 1000.0
