"""The methods the evaluation compares: lfn_ros, OpenCV DIS and Farneback, zero flow, RAFT-small.

Each is a :class:`Method`: ``fn(image1, image2) -> (flow (H, W, 2) float32 pixels, occlusion
(H, W) bool or None)`` on (H, W, 3) uint8 RGB images, plus a label and, for GPU methods, a sync
called around timing. :func:`make_method` builds one by name.

    lfn_ros        LiteFlowNet through :class:`lfn_ros.engine.FlowEngine` on the full images (the
                   engine resizes to its grid internally); its forward-backward occlusion mask is
                   scored where the dataset has occlusion ground truth. Its time includes that
                   mask (forward and backward flow in one batch of two, as the node runs it).
    RAFT-small     torchvision's ``raft_small`` with the authors' weights (:mod:`.raft`), GPU only.
    DIS-ultrafast, DIS-fast, DIS-medium
                   OpenCV DIS presets on grey images (the grey conversion is timed too).
    Farneback      OpenCV Farneback on grey images with :data:`FARNEBACK_PARAMS`.
    zero           zero flow: the sanity baseline; every method must beat it.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from .method import Method, MethodUnavailable  # noqa: F401 (MethodUnavailable: re-exported for the runner)

METHODS = ("lfn_ros", "RAFT-small", "DIS-ultrafast", "DIS-fast", "DIS-medium", "Farneback", "zero")
"""Every method the runner knows, in table order."""

PEERS = METHODS[1:]

#: OpenCV DIS presets by method name (the one definition; benchmarks/speed.py uses it too).
DIS_PRESETS = {
    "DIS-ultrafast": "DISOPTICAL_FLOW_PRESET_ULTRAFAST",
    "DIS-fast": "DISOPTICAL_FLOW_PRESET_FAST",
    "DIS-medium": "DISOPTICAL_FLOW_PRESET_MEDIUM",
}

FARNEBACK_PARAMS = dict(pyr_scale=0.5, levels=5, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
"""Farneback settings: the commonly used ones (OpenCV's samples, poly_n 5 with sigma 1.2)."""


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _dis_method(name: str) -> Method:
    dis = cv2.DISOpticalFlow_create(getattr(cv2, DIS_PRESETS[name]))

    def run(image1, image2):
        return dis.calc(_grey(image1), _grey(image2), None), None

    return Method(name, name, run)


def _farneback_method() -> Method:
    def run(image1, image2):
        return cv2.calcOpticalFlowFarneback(_grey(image1), _grey(image2), None, **FARNEBACK_PARAMS), None

    return Method("Farneback", "Farneback", run, info=dict(FARNEBACK_PARAMS))


def _zero_method() -> Method:
    def run(image1, image2):
        return np.zeros(image1.shape[:2] + (2,), dtype=np.float32), None

    return Method("zero", "zero flow", run)


def _lfn_method(weights, device: str, finest_level: Optional[int], engine=None) -> Method:
    import torch

    from ..engine import FlowEngine

    if engine is None:
        engine = FlowEngine(weights=weights, device=device, finest_level=finest_level, occlusion=True)

    def run(image1, image2):
        result = engine.infer(image1, image2, occlusion=True)
        return result.flow, result.occlusion

    sync = None
    if engine.device.type == "cuda":
        def sync():
            torch.cuda.synchronize(engine.device)

    card = dict(engine.card)
    trained = card.get("trained", False)
    name = card.get("name", "?")
    label = f"lfn_ros ({name})" if trained else "lfn_ros (untrained)"
    # The sha256 of the checkpoint file ties these results to the exact weights they measured.
    info = {"card": card, "model": engine.model_name, "device": engine.device_name,
            "weights_path": card.get("path"), "weights_sha256": card.get("sha256")}
    return Method("lfn_ros", label, run, sync, info)


def make_method(name: str, weights="default", device: str = "cpu", finest_level: Optional[int] = None,
                engine=None) -> Method:
    """Build one method by name (see METHODS). Raises MethodUnavailable when it cannot run here
    and ValueError for an unknown name. ``engine``: an existing FlowEngine for lfn_ros (an
    in-memory model, e.g. the trainer's) instead of loading ``weights``."""
    if name == "lfn_ros":
        return _lfn_method(weights, device, finest_level, engine)
    if name == "RAFT-small":
        from .raft import raft_method

        return raft_method(device)
    if name in DIS_PRESETS:
        return _dis_method(name)
    if name == "Farneback":
        return _farneback_method()
    if name == "zero":
        return _zero_method()
    raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
