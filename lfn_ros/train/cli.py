"""`lfn-ros train`: train LiteFlowNet on synthetic pairs generated on the fly.

Examples (docs/training.md has the recipe of the shipped weights and why)::

    lfn-ros train --out runs/mine --minutes 60                  # resumes from the shipped weights
    lfn-ros train --out runs/r2 --steps 16000 --schedule onecycle --lr 4e-4 --size 320x256 --batch 4
    lfn-ros train --out runs/r2 --steps 0 --export lfn_ros/weights/liteflownet_synthetic.pt

Multi-GPU: ``torchrun --nproc_per_node N -m lfn_ros.train ...``. With WORLD_SIZE > 1 every
rank runs its own generator (seeded ``seed + rank``), gradients are averaged by
DistributedDataParallel, ``--batch`` is per GPU, and only rank 0 writes files.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from ..precision import TRAIN_CHOICES as PRECISIONS
from .config import MOTIONS, TrainConfig, parse_size


def _sizes(text: str) -> tuple:
    try:
        return tuple(parse_size(part) for part in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The training options (defaults from :class:`TrainConfig`)."""
    d = TrainConfig(device="cpu")
    p.add_argument("--out", default=d.out, help="run directory: last.pt, metrics.csv, validation.csv, eval.csv, curves.png")
    p.add_argument("--resume", default=d.resume,
                   help="'auto' (OUT/last.pt, else the shipped checkpoint, else scratch), a checkpoint path, or 'none'")
    p.add_argument("--steps", type=int, default=d.steps, help="optimizer steps in this run (default: until --minutes or Ctrl-C)")
    p.add_argument("--minutes", type=float, default=d.minutes, help="stop (and save) after this much wall time")
    p.add_argument("--batch", type=int, default=d.batch, help="pairs per step (per GPU under torchrun)")
    p.add_argument("--size", dest="sizes", type=_sizes, default="448x320", metavar="WxH[,WxH...]",
                   help="crop size(s), multiples of 32; several are used in turn, one per step")
    p.add_argument("--reuse", type=int, default=d.reuse,
                   help="average uses of each generated pair (each time randomly flipped); 1: every batch fresh")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (the one-cycle peak; published: 1e-4)")
    p.add_argument("--schedule", default=d.schedule, choices=("step", "onecycle"),
                   help="step: halve every --lr-decay-every total steps (paper); onecycle: warm-up then cosine "
                        "decay over this run's --steps (RAFT's choice for a fixed budget)")
    p.add_argument("--lr-decay-every", type=int, default=d.lr_decay_every, help="step schedule: halve the learning rate every N total steps (0: never)")
    p.add_argument("--warmup", type=int, default=d.warmup, help="step schedule: linear warm-up over the first N total steps")
    p.add_argument("--final-lr-ratio", type=float, default=d.final_lr_ratio, help="onecycle: the last learning rate is lr / this")
    p.add_argument("--clip", type=float, default=d.clip, help="clip the gradient norm to this (0: off)")
    p.add_argument("--stage-loss-weight", type=float, default=d.stage_loss_weight,
                   help="weight of the loss on M's and S's own outputs at every level (deep supervision; 0: the "
                        "published loss only). M learns the matching only when supervised itself (docs/training.md)")
    p.add_argument("--matching-lr-scale", type=float, default=d.matching_lr_scale,
                   help="learning-rate multiplier of the convolutions that read the cost volume (the first conv of "
                        "every M): its inputs are ~30x smaller than other activations (docs/training.md)")
    p.add_argument("--finest-level", type=int, default=d.finest_level, choices=(2, 3, 4, 5, 6),
                   help="finest NetE level trained (stage-wise: 3 first, then 2)")
    p.add_argument("--robust", action="store_true", help="robust penalty (|d|_1 + 0.01)^0.4 instead of the EPE")
    p.add_argument("--motion", default=d.motion, choices=MOTIONS,
                   help="synthetic data: heavy-tailed motion (round 2), round 1's (for comparisons), or round 3's "
                        "(heavy + fast objects against the background + motion blur; docs/training.md)")
    p.add_argument("--scenes3d-share", type=float, default=d.scenes3d_share,
                   help="probability that a training pair is a rendered 3D scene (lfn_ros.data.scenes3d: a camera "
                        "driving, turning, hand-held or yawing past textured planes) instead of a layered one")
    p.add_argument("--motion-scale", type=float, default=d.motion_scale, help="scale of all synthetic motions")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="auto: bf16 autocast + channels_last where the device computes bf16 natively (CPUs with "
                        "AMX/AVX512-BF16 too), fp16 on older GPUs, else fp32; a precision in which f-warp is "
                        "inaccurate falls back to fp32")
    p.add_argument("--amp", dest="precision", choices=PRECISIONS, help=argparse.SUPPRESS)  # the round-1 name
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (0: torch's default)")
    p.add_argument("--validate-every", type=int, default=d.validate_every,
                   help="synthetic validation every N total steps and at the end (0: never)")
    p.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="evaluate on the real data every N total steps and at the end; 0: never. Reported only, "
                        "never used to choose anything")
    p.add_argument("--eval-root", default=d.eval_root, help="evaluation data (default: $LFN_ROS_DATA)")
    p.add_argument("--eval-pairs", type=int, default=d.eval_pairs, help="pairs per dataset in periodic evaluation (0: all)")
    p.add_argument("--save-every", type=int, default=d.save_every, help="write OUT/last.pt every N steps (and at the end)")
    p.add_argument("--log-every", type=int, default=d.log_every, help="metrics.csv row every N steps (averaged)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the synthetic data (rank r uses seed + r)")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay,
                   help="keep an exponential moving average of the weights with this decay (0.998: a horizon of "
                        "500 steps; 0: off). Validation reports raw and averaged weights; --export writes the "
                        "average and the raw weights beside it (*_raw.pt)")
    p.add_argument("--export", default=d.export, help="at the end, write the shipped form (fp16 weights + card) here")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``train`` on an argparse subparsers object."""
    p = subparsers.add_parser("train", help="train LiteFlowNet on synthetic data generated on the fly",
                              description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run_cli)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed arguments (fields missing from ``args`` keep their defaults)."""
    fields = TrainConfig.__dataclass_fields__
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


def run_cli(args) -> int:
    """Entry point of ``lfn-ros train``; returns the exit status (2 for a bad option)."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return launch(config)


def launch(config: TrainConfig) -> int:
    """Set up threads, CUDA flags and (under torchrun) the process group, then train."""
    from .run import run

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(config.device)
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        return run(config, device, rank, world)
    finally:
        if world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def main(argv=None) -> int:
    """``python -m lfn_ros.train ...`` (what torchrun starts)."""
    parser = argparse.ArgumentParser(prog="lfn-ros train", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_cli(parser.parse_args(argv))
