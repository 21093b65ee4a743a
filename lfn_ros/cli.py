"""`lfn-ros`: the one command-line entry point.

    lfn-ros infer IMG1 IMG2 --out flow.flo --color flow.png [--occlusion occ.png]
    lfn-ros infer FOLDER --out DIR            # every consecutive pair, with a progress bar
    lfn-ros infer BAG --topic /camera/image_raw --out flow_bag   # a ROS 2 bag in, the node's topics out
    lfn-ros infer --demo --color out/demo_flow.png
    lfn-ros run                               # player + flow node over real rclpy (make run)
    lfn-ros evaluate [ROOT]                   # accuracy against ground truth and peers
    lfn-ros train --out runs/x                # training on synthetic data
    lfn-ros export --onnx model.onnx          # ONNX for TensorRT / Jetson
    lfn-ros import-weights network-default.pytorch --out lfn.pt   # the paper's weights, converted once

Subcommands live in their own modules and register themselves through ``add_parser``; a
module whose optional dependencies are missing is reported, not fatal to the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from .engine.backends import BACKENDS
from .ops.cascade import CASCADES
from .ops.refine import REFINEMENTS
from .precision import CHOICES as PRECISIONS
from .resources import SEQUENCE_DIR

#: Modules that contribute subcommands via ``add_parser(subparsers)``.
SUBCOMMAND_MODULES = ("lfn_ros.demo", "lfn_ros.evaluate", "lfn_ros.train.cli", "lfn_ros.train.occlusion", "lfn_ros.train.soup",
                      "lfn_ros.export", "lfn_ros.import_weights")


def _add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default="default", help="checkpoint path; 'default' = shipped weights; '' = untrained")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto: bf16 where the device computes it natively (AMX/AVX512-BF16 CPUs too), else fp32; int8: OpenVINO with NNCF-quantised convolutions (CPU)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="torch, openvino (CPU) or auto (the fastest path within 1%% of fp32: OpenVINO for fp32 on the CPU, else torch)")
    parser.add_argument("--finest-level", type=int, default=None, choices=(2, 3, 4, 5, 6),
                        help="finest NetE level (default: the checkpoint's recommendation, else 2)")
    parser.add_argument("--refinement", default="auto", choices=REFINEMENTS,
                        help="last stage: variational (the flow refined at the input resolution), none, or auto "
                             "(variational for lfn_ros's weights, none for the paper's published ones; as the node)")
    parser.add_argument("--cascade", default="auto", choices=CASCADES,
                        help="two-scale (a half-resolution pass for large motions, fused with the full one; about "
                             "2x the network's time), none, or auto (two-scale for lfn_ros's weights, none for the "
                             "paper's published ones; as the node)")


def build_engine(args):
    """A FlowEngine from the common engine arguments."""
    from .engine import FlowEngine

    weights = None if args.weights == "" else args.weights
    return FlowEngine(weights=weights, device=args.device, precision=args.precision, finest_level=args.finest_level,
                      backend=args.backend, refinement=args.refinement, cascade=args.cascade)


def _add_infer_parser(subparsers) -> None:
    p = subparsers.add_parser("infer", help="flow between two images, every consecutive pair of a folder, or a ROS 2 bag")
    p.add_argument("inputs", nargs="*", help="IMG1 IMG2, one FOLDER of frames, or one ROS 2 BAG (folder, .mcap or .db3)")
    p.add_argument("--demo", action="store_true", help="use the first two frames of the embedded sequence")
    p.add_argument("--out", help="pair: .flo file to write; folder: output directory")
    p.add_argument("--color", help="pair: flow colour PNG to write")
    p.add_argument("--occlusion", help="pair: occlusion PNG to write (255 = occluded)")
    bag = p.add_argument_group("bags (lfn_ros.bags): BAG --topic T --out OUT_BAG")
    bag.add_argument("--topic", help="bag: the sensor_msgs/Image or CompressedImage topic to process")
    bag.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"), help="bag: storage of the output bag")
    bag.add_argument("--flow-color", action="store_true", help="bag: also write /flow/color (rgb8)")
    bag.add_argument("--copy-input", action="store_true", help="bag: also copy the input topic into the output bag")
    _add_engine_arguments(p)
    p.set_defaults(func=run_infer)


def _infer_pair(engine, path1, path2, out=None, color=None, occlusion=None) -> dict:
    from .io import flow_to_color, occlusion_to_image, read_image, write_flo, write_image

    image1, image2 = read_image(path1), read_image(path2)
    if image1.shape != image2.shape:
        raise SystemExit(f"error: {path1} is {image1.shape[1]}x{image1.shape[0]} but {path2} is {image2.shape[1]}x{image2.shape[0]}")
    result = engine.infer(image1, image2, occlusion=occlusion is not None)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_flo(out, result.flow)
    if color:
        write_image(color, flow_to_color(result.flow))
    if occlusion:
        write_image(occlusion, occlusion_to_image(result.occlusion))
    return {"flow": result.flow, "ms": result.timings["compute"]}


def run_infer(args) -> int:
    from tqdm import tqdm

    from .io import list_frames

    inputs = [Path(p) for p in args.inputs]
    from .bags import is_bag

    if len(inputs) == 1 and is_bag(inputs[0]):
        return run_infer_bag(args, inputs[0])
    if args.demo:
        frames = list_frames(SEQUENCE_DIR) if SEQUENCE_DIR.is_dir() else []
        if len(frames) < 2:
            print(f"error: the embedded sequence {SEQUENCE_DIR} is missing", file=sys.stderr)
            return 2
        inputs = frames[:2]
        if not (args.out or args.color or args.occlusion):
            args.color = "out/demo_flow.png"
    if len(inputs) == 1 and inputs[0].is_dir():
        if not args.out:
            print("error: folder mode needs --out DIR", file=sys.stderr)
            return 2
        frames = list_frames(inputs[0])
        if len(frames) < 2:
            print(f"error: {inputs[0]} holds {len(frames)} frames; need at least 2", file=sys.stderr)
            return 2
        engine = build_engine(args)
        out = Path(args.out)
        for first, second in tqdm(list(zip(frames, frames[1:])), desc="flow", unit="pair"):
            stem = first.stem
            _infer_pair(engine, first, second, out=out / f"{stem}.flo", color=out / f"{stem}_flow.png",
                        occlusion=out / f"{stem}_occlusion.png")
        print(f"wrote {len(frames) - 1} flow fields to {out}")
        return 0
    if len(inputs) != 2:
        print("error: give IMG1 IMG2, one FOLDER, or --demo", file=sys.stderr)
        return 2
    for path in inputs:
        if not path.is_file():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
    if not (args.out or args.color or args.occlusion):
        print("error: nothing to write: give --out, --color and/or --occlusion", file=sys.stderr)
        return 2
    engine = build_engine(args)
    info = _infer_pair(engine, inputs[0], inputs[1], args.out, args.color, args.occlusion)
    flow = info["flow"]
    magnitude = (flow ** 2).sum(-1) ** 0.5
    print(f"{inputs[0].name} -> {inputs[1].name}: {flow.shape[1]}x{flow.shape[0]}, "
          f"mean |flow| {magnitude.mean():.2f} px, max {magnitude.max():.2f} px, {info['ms']:.0f} ms on {engine.device_name} "
          f"({engine.model_name})")
    for label, path in (("flow", args.out), ("colour", args.color), ("occlusion", args.occlusion)):
        if path:
            print(f"  {label}: {path}")
    return 0


def run_infer_bag(args, bag: Path) -> int:
    """``lfn-ros infer BAG --topic T --out OUT``: the node's topics for every frame, into a new bag."""
    from .bags import BagError, process_bag

    if not args.topic or not args.out:
        print("error: bag mode needs --topic TOPIC and --out OUT_BAG", file=sys.stderr)
        return 2
    engine = build_engine(args)
    try:
        counts = process_bag(bag, args.topic, args.out, engine, storage=args.storage, color=args.flow_color,
                             copy_input=args.copy_input)
    except BagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rate = counts.read / counts.seconds if counts.seconds else 0.0
    print(f"{bag} {args.topic}: {counts.read} messages in {counts.seconds:.1f} s ({rate:.1f} frames/s): "
          f"{counts.published} flow fields, {counts.first} sequence starts, {counts.bad} bad messages skipped"
          f"{' (interrupted)' if counts.interrupted else ''}; wrote {args.out} ({args.storage}, {engine.model_name})")
    return 130 if counts.interrupted else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lfn-ros", description="LiteFlowNet optical flow for ROS 2 robots")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_infer_parser(subparsers)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name and not exc.name.startswith("lfn_ros"):
                logging.getLogger(__name__).debug("subcommand module %s unavailable: %s", name, exc)
                continue
            if exc.name == name:  # not written yet / not installed
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .model.weights import WeightsError

    try:
        return int(args.func(args) or 0)
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
