"""Evaluation of lfn_ros against ground truth and its peers (``lfn-ros evaluate``).

    metrics  EPE, 1/3/5 px, Fl-all, EPE per true-motion bin, occlusion precision/recall/F1 (summable counts)
    methods  lfn_ros, OpenCV DIS presets, Farneback, zero flow: one Method contract
    raft     RAFT-small, the GPU peer (torchvision + the authors' weights)
    runner   evaluate(): every method on the same pairs, tables, plot, JSON
    report   tables, the accuracy-vs-time plot, JSON-safe values
    cli      the ``evaluate`` subcommand
"""

from .cli import add_parser, run_cli
from .methods import DIS_PRESETS, FARNEBACK_PARAMS, METHODS, PEERS, Method, MethodUnavailable, make_method
from .metrics import (
    MOTION_BINS,
    OcclusionScores,
    add_counts,
    endpoint_error,
    error_counts,
    occlusion_counts,
    occlusion_scores,
    summarize_errors,
    summarize_occlusion,
)
from .raft import raft_state_dict
from .runner import evaluate

__all__ = [
    "METHODS", "PEERS", "DIS_PRESETS", "FARNEBACK_PARAMS", "MOTION_BINS", "OcclusionScores", "add_counts", "Method", "MethodUnavailable",
    "endpoint_error", "occlusion_scores", "error_counts", "occlusion_counts", "summarize_errors",
    "summarize_occlusion", "make_method", "raft_state_dict", "evaluate", "add_parser", "run_cli",
]
