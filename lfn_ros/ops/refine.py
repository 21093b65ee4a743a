"""Variational refinement of a flow field at the input resolution (the engine's last stage).

LiteFlowNet's flow comes from its finest decoder level (level 3: a quarter of the input
resolution, level 2: half) and is upsampled bilinearly, so its sub-pixel precision and its
motion boundaries are those of that grid. A few iterations of a variational energy minimised at
the full resolution, starting from the network's flow, recover both: the energy of Brox et al.
(ECCV 2004: brightness and gradient constancy, smoothness, robust penalties) in the form DIS uses
at every scale (Kroeger et al., ECCV 2016; OpenCV's ``cv2.VariationalRefinement``), applied once,
at the finest scale only. FlowNet's "+v" models did the same to a CNN's flow (Dosovitskiy et al.,
ICCV 2015, table 2). The network is unchanged; this is post-processing on the host.

The parameters are OpenCV's defaults, which are also DIS-medium's (alpha 20, delta 5, gamma 10,
5 fixed-point x 5 SOR iterations), chosen among six settings on synthetic validation only
(``python benchmarks/refinement.py``; docs/training.md, "The variational refinement"): within
0.5 % of the best one there (10 fixed-point iterations) at half its cost; weighting the data
terms 10x more made every set worse.

What it costs (same benchmark, two AMD EPYC Zen 3 cores, OpenCV's thread pool): 6.9 ms at
320x240, 26.5 ms at 640x480, 91 ms at 1280x720, on the host whatever the inference device.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

#: Names the engine, the node and the CLI accept for ``refinement`` ("auto": :func:`resolve_refinement`).
REFINEMENTS = ("auto", "variational", "none")


@dataclass(frozen=True)
class VariationalParams:
    """The energy's weights and the solver's iterations (OpenCV's names and defaults).

    alpha: smoothness weight; delta: brightness-constancy weight; gamma: gradient-constancy
    weight (all dimensionless, for grey values in [0, 255]); omega: SOR relaxation factor;
    fixed_point_iterations x sor_iterations: outer (re-linearisation) x inner solver steps."""

    alpha: float = 20.0
    delta: float = 5.0
    gamma: float = 10.0
    omega: float = 1.6
    fixed_point_iterations: int = 5
    sor_iterations: int = 5


def grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 luminance (what the refinement compares)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


class VariationalRefiner:
    """Refines flows with :class:`VariationalParams` (one OpenCV solver, reused; thread-safe)."""

    def __init__(self, params: VariationalParams = VariationalParams()) -> None:
        self.params = params
        self._solver = cv2.VariationalRefinement_create()
        self._solver.setAlpha(params.alpha)
        self._solver.setDelta(params.delta)
        self._solver.setGamma(params.gamma)
        self._solver.setOmega(params.omega)
        self._solver.setFixedPointIterations(params.fixed_point_iterations)
        self._solver.setSorIterations(params.sor_iterations)
        self._lock = threading.Lock()  # the solver keeps per-call buffers

    def __call__(self, flow: np.ndarray, grey1: np.ndarray, grey2: np.ndarray) -> np.ndarray:
        """The refined flow.

        Args:
            flow: (H, W, 2) float32 pixels, frame 1 -> frame 2 (channel 0 = x, 1 = y); not modified.
            grey1, grey2: (H, W) uint8 grey frames 1 and 2 (:func:`grey`).

        Returns:
            (H, W, 2) float32 pixels, a new array.
        """
        if flow.ndim != 3 or flow.shape[2] != 2 or grey1.shape != flow.shape[:2] or grey2.shape != grey1.shape:
            raise ValueError(f"expected flow (H, W, 2) and two (H, W) grey frames, got {flow.shape}, "
                             f"{grey1.shape}, {grey2.shape}")
        refined = np.array(flow, dtype=np.float32, order="C", copy=True)
        with self._lock:
            return self._solver.calc(grey1, grey2, refined)


def resolve_refinement(name: str, card: dict) -> str:
    """``name`` with "auto" resolved for the weights whose card is ``card``: "none" for the
    paper's published weights (imported from sniklaus's, ptlflow's or mmflow's files: they run
    exactly as published, and the refinement was measured only on lfn_ros's own weights), else
    "variational" (lfn_ros's weights: measured better on the evaluation data, docs/training.md).
    ValueError for a name not in :data:`REFINEMENTS`."""
    if name not in REFINEMENTS:
        raise ValueError(f"refinement must be one of {', '.join(REFINEMENTS)}, got {name!r}")
    if name != "auto":
        return name
    return "none" if card.get("imported") else "variational"


def make_refiner(name: str) -> VariationalRefiner | None:
    """The refiner called ``name`` ("variational" or "none", resolved); None for "none"."""
    if name not in REFINEMENTS[1:]:
        raise ValueError(f"refinement must be one of {', '.join(REFINEMENTS[1:])} once resolved, got {name!r}")
    return VariationalRefiner() if name == "variational" else None
