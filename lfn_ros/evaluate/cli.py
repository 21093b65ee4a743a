"""`lfn-ros evaluate`: accuracy and speed of lfn_ros and its peers on data with ground truth."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from ..engine.backends import BACKENDS
from ..ops.cascade import CASCADES
from ..ops.refine import REFINEMENTS
from ..precision import CHOICES as PRECISIONS
from ..resources import data_root
from .methods import METHODS
from .runner import evaluate


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand on an argparse subparsers object."""
    default_root = data_root()
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy and speed of lfn_ros and its peers on flow benchmarks with ground truth",
        description="Evaluate lfn_ros (LiteFlowNet) and its peers (OpenCV DIS ultrafast/fast/medium, "
                    "Farneback, zero flow, RAFT-small where torchvision is installed) on every dataset "
                    "found under ROOT: one table per dataset plus an 'all' summary.",
    )
    parser.add_argument("root", metavar="ROOT", nargs="?", default=None,
                        help="data folder with Sintel/, FlyingChairs/, Middlebury/, KITTI2012/ "
                             f"(default: $LFN_ROS_DATA{'; here ' + str(default_root) if default_root else ', unset here'})")
    parser.add_argument("--weights", default="default",
                        help="lfn_ros checkpoint file, 'default' (shipped weights), or 'none' / '' (untrained)")
    parser.add_argument("--device", default=None,
                        help="'cpu', 'cuda' or 'cuda:N' (default: cuda when available, else cpu)")
    parser.add_argument("--finest-level", type=int, choices=(2, 3, 4, 5, 6), default=None,
                        help="finest decoder level of lfn_ros: 2 as published, 3 faster "
                             "(default: the checkpoint's recommendation, else 2)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="lfn_ros's engine backend (auto: OpenVINO on the CPU where installed, as the node)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="lfn_ros's precision (auto: bf16 where the device computes it natively, as the node; "
                             "int8: OpenVINO with NNCF-quantised convolutions, CPU)")
    parser.add_argument("--occlusion-method", default="auto", choices=("auto", "check", "head"),
                        help="lfn_ros's occlusion mask (auto: the checkpoint's head where it has one, else the check)")
    parser.add_argument("--refinement", default="auto", choices=REFINEMENTS,
                        help="lfn_ros's last stage (variational: refined at the input resolution; none: the network's "
                             "flow alone; auto, as the node: variational for lfn_ros's weights, none for the paper's)")
    parser.add_argument("--cascade", default="auto", choices=CASCADES,
                        help="lfn_ros's two-scale cascade (two-scale: a half-resolution pass for large motions, fused "
                             "with the full one; none: one pass; auto, as the node: two-scale for lfn_ros's weights, "
                             "none for the paper's)")
    parser.add_argument("--datasets", default=None,
                        help="comma-separated dataset names, e.g. Sintel-clean,Middlebury (default: all found)")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated methods (default: all of {','.join(METHODS)})")
    parser.add_argument("--max-pairs", type=int, default=None, help="at most N pairs per dataset")
    parser.add_argument("--plot", metavar="FILE", default=None, help="write a PNG of EPE against time per pair")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the raw results as JSON")
    parser.add_argument("--no-peers", action="store_true", help="evaluate lfn_ros only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_cli)
    return parser


def _split(text: Optional[str]) -> Optional[List[str]]:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def run_cli(args: argparse.Namespace) -> int:
    """Run ``lfn-ros evaluate`` from parsed arguments; returns the exit code (0 ok, 2 usage)."""
    root = Path(args.root) if args.root else data_root()
    if root is None:
        print("lfn-ros evaluate: error: no ROOT given and $LFN_ROS_DATA names no folder", file=sys.stderr)
        return 2
    if not root.is_dir():
        print(f"lfn-ros evaluate: error: data folder {root} does not exist", file=sys.stderr)
        return 2
    weights = args.weights
    if weights is not None and weights.strip().lower() in ("none", "untrained", "random", ""):
        weights = None
    device = args.device
    if device is None:
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    from ..model.weights import WeightsError

    methods = _split(args.methods) or list(METHODS)
    if args.no_peers:
        methods = ["lfn_ros"]
    try:
        engine = None
        if "lfn_ros" in methods:  # the engine as the node builds it, with these settings
            import warnings

            from ..engine import FlowEngine
            from ..model.weights import UntrainedWarning

            with warnings.catch_warnings():
                warnings.simplefilter("always", UntrainedWarning)
                engine = FlowEngine(weights=weights, device=device, finest_level=args.finest_level, backend=args.backend,
                                    precision=args.precision, occlusion_method=args.occlusion_method,
                                    refinement=args.refinement, cascade=args.cascade)
        evaluate(root, weights=weights, device=device, methods=methods, datasets=_split(args.datasets),
                 max_pairs=args.max_pairs, plot=args.plot, json_out=args.json,
                 progress=not args.no_progress, finest_level=args.finest_level, engine=engine)
    except (ValueError, FileNotFoundError, WeightsError) as exc:
        print(f"lfn-ros evaluate: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m lfn_ros.evaluate ...`` (same arguments as ``lfn-ros evaluate``)."""
    parser = argparse.ArgumentParser(prog="python -m lfn_ros.evaluate")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["evaluate", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
