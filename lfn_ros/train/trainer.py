"""`lfn-ros train`: train LiteFlowNet on synthetic pairs generated on the fly (DESIGN.md section 4).

Recipe (published, Hui et al. CVPR 2018, section 4, except where noted): the multi-scale L2
endpoint-error loss of :mod:`lfn_ros.train.loss`; Adam (beta1 0.9, beta2 0.999), learning rate
1e-4 halved every ``--lr-decay-every`` steps (the published schedules halve it at fixed
iterations in the hundreds of thousands); levels added stage-wise (train with ``--finest-level 3``
first, then resume with 2). Our additions: the data is :class:`lfn_ros.data.synthetic.SyntheticFlow`
instead of FlyingChairs/Things (which cannot be obtained here), a short linear warm-up of the
learning rate for runs from scratch, gradient-norm clipping, skipping of non-finite steps, and
mixed precision (bf16 autocast by default) on CUDA.

Runs and resuming. ``--out DIR`` holds ``last.pt`` (model, optimizer, step, data generator state:
resuming from it continues exactly as if never stopped), ``metrics.csv``, ``eval.csv``,
``curves.png`` and ``train.log``. ``--resume`` picks the start:

- ``auto`` (default): ``DIR/last.pt`` if it exists, else the shipped checkpoint
  (``lfn_ros/weights/liteflownet_synthetic.pt``; training continues across runs from the committed
  weights), else random initialisation;
- a path: a full training checkpoint, or a weights-only checkpoint (such as the shipped fp16 copy:
  the weights and the card's step count are taken, the optimizer starts fresh and the data stream
  is reseeded with ``seed + steps`` so it does not repeat the earlier run's);
- ``none``: random initialisation.

The card in every checkpoint accumulates steps, pairs and wall time over all runs, and records
the recipe, the hardware, the finest level trained and the latest evaluation. ``--export PATH``
writes the shipped form (fp16 weights + card) at the end; ``--steps 0 --export PATH`` exports an
existing checkpoint without training.

Multi-GPU: start with ``torchrun --nproc_per_node N -m lfn_ros.train.trainer ...``. With
WORLD_SIZE > 1 every rank runs its own generator (seeded ``seed + rank``), gradients are averaged
by DistributedDataParallel, ``--batch`` is per GPU, and only rank 0 writes files.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.distributed as dist

from ..data.synthetic import SyntheticConfig, SyntheticFlow
from ..model.liteflownet import LEVELS, LiteFlowNet
from ..model.weights import DEFAULT_WEIGHTS, WeightsError, apply_state_dict, read_checkpoint, save_checkpoint
from .loss import LEVEL_WEIGHTS, endpoint_error, multiscale_loss

METRIC_FIELDS = ["step", "run_step", "time_s", "wall_total_s", "lr", "loss", "epe", "grad_norm", "pairs_per_s",
                 "finest_level", "skipped"] + [f"loss_l{k}" for k in LEVELS]


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (height, width); both must be multiples of 32."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 320x224, got {text!r}") from exc
    if width < 64 or height < 64 or width % 32 or height % 32:
        raise argparse.ArgumentTypeError(f"size {text}: width and height must be multiples of 32, at least 64")
    return height, width


def bilinear_kernel(size: int) -> torch.Tensor:
    """(size, size) kernel of x2 bilinear upsampling by a stride-2 transposed convolution."""
    factor = (size + 1) // 2
    centre = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    ramp = 1 - (torch.arange(size, dtype=torch.float32) / factor - centre).abs()
    return ramp[:, None] * ramp[None, :]


def initialise(model: LiteFlowNet) -> None:
    """Initialisation for training from scratch (our choice; the paper does not specify one):

    - convolutions: He normal for LeakyReLU(0.1), zero bias (PyTorch's default uniform
      initialisation is about 2.4x smaller and left the cascade on a long initial plateau);
    - transposed convolutions (flow upsampling between levels, cost-volume upsampling at levels
      2-3): exact bilinear x2 upsampling, so the coarse flow reaches the next level intact;
    - f-lcon's per-channel 1x1 convs (``scale_x``, ``scale_y``): weights 1, bias 0, so R starts
      as the normalised local average sum(g * flow) / sum(g) instead of a random mix.
    """
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ConvTranspose2d):
            with torch.no_grad():
                module.weight.copy_(bilinear_kernel(module.kernel_size[0]).expand_as(module.weight))
                if module.bias is not None:
                    module.bias.zero_()
        elif isinstance(module, torch.nn.Conv2d):
            if name.endswith(("scale_x", "scale_y")):
                torch.nn.init.ones_(module.weight)
            else:
                torch.nn.init.kaiming_normal_(module.weight, a=0.1, nonlinearity="leaky_relu")
            torch.nn.init.zeros_(module.bias)


def warp_error_px(device, dtype: torch.dtype, width: int = 256) -> float:
    """Largest error (pixels) of ``ops.warp`` shifting a ramp by 0.25 px when image and flow are
    in ``dtype`` (as under autocast). Sampling positions must be computed in fp32: in bf16 a
    position near pixel 200 is quantised to 1 px, so f-warp would be off by up to half a pixel."""
    from ..ops.warp import warp

    ramp = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, 1, width).expand(1, 1, 4, width) / width
    flow = torch.zeros(1, 2, 4, width, device=device, dtype=dtype)
    flow[:, 0] = 0.25
    try:
        out = warp(ramp.to(dtype), flow)
    except RuntimeError:
        return float("inf")
    return float(((out.float() - (ramp + 0.25 / width))[..., 8:-8].abs().max()) * width)


def hardware_description(device: torch.device, world: int = 1) -> str:
    """'NVIDIA H100 x2' or 'CPU: <model>, N cores'."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} x{world}"
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    processes = f", {world} processes" if world > 1 else ""
    return f"CPU: {model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads{processes}"


def _plain(value):
    """JSON-friendly copy of argparse values (tuples -> lists, paths -> str)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Trainer:
    """One training process (one rank). Usable without the CLI (the tests do).

    Args:
        args: an argparse.Namespace with the options of :func:`add_parser` (see
            :func:`default_args` for a complete set of defaults).
        device: torch device of this rank.
        rank, world: distributed rank and world size (0, 1 for a single process).
    """

    def __init__(self, args, device=None, rank: int = 0, world: int = 1) -> None:
        self.args = args
        self.rank, self.world = rank, world
        self.device = torch.device(device or args.device)
        self.height, self.width = args.size
        self.model = LiteFlowNet(finest_level=args.finest_level)
        initialise(self.model)  # overwritten by any checkpoint loaded later
        self.model.to(self.device)
        self._set_trainable(args.finest_level)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr, betas=(0.9, 0.999))
        self.amp_dtype = self._amp_dtype(args.amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0  # total optimizer steps over all runs (drives the learning-rate schedule)
        self.card: dict = {}
        self.data_config = SyntheticConfig(motion_scale=args.motion_scale)
        self.data = SyntheticFlow(self.height, self.width, device=self.device, seed=args.seed + rank, config=self.data_config)
        self.resumed_from = None
        self.net = self.model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)

    # ------------------------------------------------------------------ set-up
    def _set_trainable(self, finest_level: int) -> None:
        """Levels finer than ``finest_level`` are not run: freeze them (no gradient, DDP-safe)."""
        for kind in (self.model.matching, self.model.subpixel, self.model.regularization):
            for name, module in kind.items():
                level = int(name.replace("level", ""))
                for param in module.parameters():
                    param.requires_grad_(level >= finest_level)

    def _amp_dtype(self, amp: str):
        """The autocast dtype, or None for fp32. On CUDA, ``auto`` takes bf16 (else fp16) only if
        f-warp stays accurate in it (see :func:`warp_error_px`); otherwise training runs in fp32."""
        if self.device.type != "cuda" or amp == "off":
            return None  # CPU: autocast is a no-op, everything stays fp32
        if amp == "auto":
            candidates = [torch.bfloat16] if torch.cuda.is_bf16_supported() else []
            candidates.append(torch.float16)
        else:
            candidates = [{"bf16": torch.bfloat16, "fp16": torch.float16}[amp]]
        for dtype in candidates:
            error = warp_error_px(self.device, dtype)
            if error <= 0.02:
                return dtype
            message = (f"[train] f-warp with {dtype} inputs misplaces samples by {error:.3f} px (sampling positions "
                       f"computed in {dtype}); ")
            if amp != "auto":
                print(message + "using it anyway because --amp was given explicitly", file=sys.stderr)
                return dtype
            print(message + "not using it", file=sys.stderr)
        print("[train] mixed precision disabled: training in fp32 (TF32 convolutions)", file=sys.stderr)
        return None

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based, total over runs)."""
        args = self.args
        lr = args.lr * 0.5 ** (step // args.lr_decay_every) if args.lr_decay_every > 0 else args.lr
        if args.warmup > 0 and step < args.warmup:
            lr *= (step + 1) / args.warmup
        return lr

    # ------------------------------------------------------------------ checkpoints
    def training_state(self) -> dict:
        """Everything needed to continue exactly: optimizer, scaler, step, data generator state(s).
        Collective under DDP (gathers every rank's generator state)."""
        states = [self.data.get_state()]
        if self.world > 1:
            states = [None] * self.world
            dist.all_gather_object(states, self.data.get_state())
        return {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "generator_states": states,
            "world_size": self.world,
        }

    def load(self, path, full: bool = True) -> dict:
        """Load a checkpoint. A full one (with training state) restores everything when ``full``;
        a weights-only one restores the weights and the step count from its card."""
        payload = read_checkpoint(path)
        apply_state_dict(self.model, payload["state_dict"], source=f"checkpoint {path}")
        self.card = dict(payload.get("card") or {})
        training = payload.get("training")
        if full and training:
            try:
                self.optimizer.load_state_dict(training["optimizer"])
                if training.get("scaler"):
                    self.scaler.load_state_dict(training["scaler"])
                self.step = int(training["step"])
                states = training.get("generator_states") or []
            except (KeyError, ValueError, TypeError) as exc:
                raise WeightsError(f"checkpoint {path} has unusable training state: {exc}") from exc
            if len(states) == self.world and states[self.rank] is not None:
                self.data.set_state(states[self.rank])
            else:  # other world size: a fresh stream per rank, different from the first run's
                self.data.generator.manual_seed(self.args.seed + self.rank + 1_000_003 * self.step)
        else:
            self.step = int(self.card.get("steps", 0))
            self.data.generator.manual_seed(self.args.seed + self.rank + 1_000_003 * self.step)
        self.resumed_from = str(path)
        return payload

    def save(self, path, card: dict, training: bool = True) -> None:
        """Write a checkpoint (rank 0 only; collective under DDP when ``training``)."""
        state = self.training_state() if training else None
        if self.rank == 0:
            save_checkpoint(path, self.model, card=card, training=state)

    # ------------------------------------------------------------------ one step
    def train_step(self, batch: dict | None = None) -> dict:
        """One optimizer step on ``batch`` (default: a fresh synthetic batch). Returns floats:
        loss, epe (finest output vs ground truth, pixels), grad_norm, lr, skipped, loss_l<k>."""
        self.net.train()
        if batch is None:
            batch = self.data.sample(self.args.batch)
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                            enabled=self.amp_dtype is not None):
            flow, levels = self.net(batch["image1"], batch["image2"], return_levels=True)
        loss, parts = multiscale_loss(levels, batch["flow"], batch.get("valid"), level_ids=self.model.active_levels,
                                      robust=self.args.robust)
        self.optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        grad_norm = float("nan")
        if finite:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            params = [p for p in self.model.parameters() if p.requires_grad]
            norm = torch.nn.utils.clip_grad_norm_(params, self.args.clip if self.args.clip > 0 else float("inf"))
            grad_norm = float(norm)
            finite = math.isfinite(grad_norm)
            if self.scaler.is_enabled():
                self.scaler.step(self.optimizer)  # fp16: skips the step itself on inf/nan gradients
                self.scaler.update()
            elif finite:
                self.optimizer.step()
        self.step += 1
        out = {"loss": float(loss.detach()), "epe": float(endpoint_error(flow, batch["flow"], batch.get("valid"))),
               "grad_norm": grad_norm, "lr": lr, "skipped": 0 if finite else 1}
        for k in LEVELS:
            out[f"loss_l{k}"] = float(parts[k]) if k in parts else float("nan")
        return out


# ====================================================================== CLI

def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``train`` on an argparse subparsers object."""
    p = subparsers.add_parser("train", help="train LiteFlowNet on synthetic data generated on the fly",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_arguments(p)
    p.set_defaults(func=run_cli)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/train", help="run directory: last.pt, metrics.csv, eval.csv, curves.png")
    p.add_argument("--resume", default="auto",
                   help="'auto' (OUT/last.pt, else the shipped checkpoint, else scratch), a checkpoint path, or 'none'")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps in this run (default: until --minutes or Ctrl-C)")
    p.add_argument("--minutes", type=float, default=None, help="stop (and save) after this much wall time")
    p.add_argument("--batch", type=int, default=8, help="pairs per step (per GPU under torchrun)")
    p.add_argument("--size", type=parse_size, default="448x320", metavar="WxH", help="crop size, multiples of 32")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (published: 1e-4)")
    p.add_argument("--lr-decay-every", type=int, default=100_000, help="halve the learning rate every N total steps (0: never)")
    p.add_argument("--warmup", type=int, default=200, help="linear learning-rate warm-up over the first N total steps")
    p.add_argument("--clip", type=float, default=200.0, help="clip the gradient norm to this (0: off)")
    p.add_argument("--finest-level", type=int, default=2, choices=(2, 3, 4, 5, 6),
                   help="finest NetE level trained (stage-wise: 3 first, then 2)")
    p.add_argument("--robust", action="store_true", help="robust penalty (|d|_1 + 0.01)^0.4 instead of the EPE")
    p.add_argument("--motion-scale", type=float, default=1.0, help="scale of all synthetic motions (larger crops: larger)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"),
                   help="autocast on CUDA (auto: bf16 where supported, else fp16, each only if f-warp stays "
                        "accurate in it, else fp32); ignored on the CPU")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--eval-every", type=int, default=0,
                   help="evaluate on the real data (lfn_ros.evaluate) every N steps and at the end; 0: never. "
                        "Reported only, never used to choose anything")
    p.add_argument("--eval-root", default=None, help="evaluation data (default: $LFN_ROS_DATA or ../shared/data)")
    p.add_argument("--eval-pairs", type=int, default=2, help="pairs per dataset in periodic evaluation (0: all)")
    p.add_argument("--save-every", type=int, default=100, help="write OUT/last.pt every N steps (and at the end)")
    p.add_argument("--log-every", type=int, default=10, help="metrics.csv row every N steps (averaged)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (rank r uses seed + r)")
    p.add_argument("--export", default=None, help="at the end, write the shipped form (fp16 weights + card) here")


def default_args(**overrides) -> argparse.Namespace:
    """The CLI defaults as a Namespace, with overrides (for tests and scripts)."""
    parser = argparse.ArgumentParser()
    _add_arguments(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        if not hasattr(args, key):
            raise AttributeError(f"unknown training option {key!r}")
        setattr(args, key, value)
    return args


def _resolve_resume(args, out: Path):
    if args.resume in (None, "", "none"):
        return None
    if args.resume == "auto":
        if (out / "last.pt").is_file():
            return out / "last.pt"
        return DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else None
    return Path(args.resume)


def _build_card(trainer: Trainer, previous: dict, run: dict, evaluation: dict | None) -> dict:
    args = trainer.args
    # An export-only call (--steps 0) trains nothing: it must not add a run or replace the
    # recipe, hardware and data settings of the runs that did the training.
    trained = run["steps"] > 0 or not previous
    runs = list(previous.get("runs", [])) + ([run] if trained else [])
    levels = [r.get("finest_level") for r in runs if r.get("finest_level") and r.get("steps", 0) > 0]
    card = {
        "name": "liteflownet_synthetic",
        "model": "LiteFlowNet (Hui, Tang, Loy, CVPR 2018) as published, 5.38 M parameters",
        "data": "lfn_ros.data.synthetic: layered synthetic scenes with exact flow and occlusion; textures from "
                "photographs bundled with scikit-image and procedural noise. No real or evaluation data.",
        "loss": "multi-scale L2 endpoint error, level weights " + json.dumps({str(k): v for k, v in LEVEL_WEIGHTS.items()})
                + (", robust penalty" if args.robust else ""),
        "optimizer": "Adam (0.9, 0.999), gradient-norm clipping",
        "recipe": _plain(vars(args) | {"size": f"{args.size[1]}x{args.size[0]}"}) if trained else previous.get("recipe"),
        "synthetic_config": trainer.data_config.to_dict() if trained else previous.get("synthetic_config"),
        "steps": trainer.step,
        "pairs_seen": int(previous.get("pairs_seen", 0)) + run["pairs"],
        "wall_time_s": round(float(previous.get("wall_time_s", 0.0)) + run["wall_time_s"], 1),
        "hardware": run["hardware"] if trained else previous.get("hardware", run["hardware"]),
        # The finest level any run trained; load_model runs the network to this level by default.
        "finest_level_trained": min(levels) if levels else args.finest_level,
        "recommended_finest_level": min(levels) if levels else args.finest_level,
        "runs": runs,
        "evaluation": evaluation if evaluation is not None else previous.get("evaluation"),
        "resumed_from": trainer.resumed_from,
        "torch": str(torch.__version__),
    }
    return card


def _evaluate(trainer: Trainer, out: Path, root) -> dict | None:
    """Periodic evaluation through lfn_ros.evaluate (if it is installed and data exists)."""
    try:
        from .. import evaluate as ev
    except ImportError as exc:  # the evaluation module is optional for training
        print(f"[train] evaluation skipped: {exc}", file=sys.stderr)
        return None
    root = root or ev.default_data_root()
    if root is None or not Path(root).is_dir():
        print("[train] evaluation skipped: no evaluation data found", file=sys.stderr)
        return None
    weights = out / "eval_weights.pt"
    save_checkpoint(weights, trainer.model, card={"name": f"step {trainer.step}"})
    with open(out / "eval.log", "a") as log:
        print(f"\n##### step {trainer.step} ({datetime.now(timezone.utc).isoformat(timespec='seconds')})", file=log, flush=True)
        results = ev.evaluate(root, weights=str(weights), device=str(trainer.device), methods=("lfn_ros",),
                              max_pairs=trainer.args.eval_pairs or None, progress=False,
                              finest_level=trainer.model.finest_level, warmup=False, out=log)
    table = {"step": trainer.step, "finest_level": trainer.model.finest_level, "max_pairs": trainer.args.eval_pairs}
    for name, entry in results.get("datasets", {}).items():
        row = entry["methods"].get("lfn_ros", {})
        table[name] = {k: row.get(k) for k in ("epe", "fl_all", "1px", "3px", "pairs")}
    overall = results.get("all", {}).get("methods", {}).get("lfn_ros", {})
    table["all"] = {k: overall.get(k) for k in ("epe", "fl_all", "pairs")}
    new = not (out / "eval.csv").exists()
    with open(out / "eval.csv", "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["step", "dataset", "epe", "fl_all", "pairs"])
        for name, row in table.items():
            if isinstance(row, dict):
                writer.writerow([trainer.step, name, row.get("epe"), row.get("fl_all"), row.get("pairs")])
    return table


def plot_curves(out: Path) -> Path | None:
    """curves.png from metrics.csv (and eval.csv): loss and EPE against total steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(out / "metrics.csv"))) if (out / "metrics.csv").exists() else []
    if not rows:
        return None
    step = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(step, [float(r["loss"]) for r in rows], lw=1)
    axes[0].set(title="training loss (multi-scale, per pair)", xlabel="step", yscale="log")
    axes[1].plot(step, [float(r["epe"]) for r in rows], lw=1, label="synthetic training batches")
    if (out / "eval.csv").exists():
        evals = [r for r in csv.DictReader(open(out / "eval.csv")) if r["epe"] not in ("", "None")]
        for name in sorted({r["dataset"] for r in evals}):
            points = [(int(r["step"]), float(r["epe"])) for r in evals if r["dataset"] == name]
            axes[1].plot(*zip(*points), marker="o", lw=1, label=f"eval: {name}")
    axes[1].set(title="endpoint error (pixels)", xlabel="step", yscale="log")
    axes[1].legend(fontsize=7)
    # Dotted lines where a new run resumed (crop size, level or motion may change there).
    starts = [int(rows[i]["step"]) - int(rows[i]["run_step"]) for i in range(1, len(rows))
              if int(rows[i]["run_step"]) < int(rows[i - 1]["run_step"])]
    for ax in axes:
        for start in starts:
            ax.axvline(start, color="grey", ls=":", lw=1)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_cli(args) -> int:
    """Entry point of ``lfn-ros train``; returns the exit status."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(args.device)
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out)
    main = rank == 0
    if main:
        out.mkdir(parents=True, exist_ok=True)
    try:
        return _train(args, out, device, rank, world, main)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(args, out: Path, device, rank: int, world: int, main: bool) -> int:
    from tqdm import tqdm

    trainer = Trainer(args, device=device, rank=rank, world=world)
    resume = _resolve_resume(args, out)
    if resume is not None:
        trainer.load(resume)
        if main:
            print(f"[train] resumed from {resume} at step {trainer.step}", file=sys.stderr)
    elif main:
        print("[train] starting from random initialisation", file=sys.stderr)
    previous = dict(trainer.card)
    hardware = hardware_description(trainer.device, world)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    first_step = trainer.step
    t0 = time.time()
    stop = {"flag": False}

    def request_stop(signum, frame):  # finish the current step, save, exit
        stop["flag"] = True
        print(f"\n[train] {signal.Signals(signum).name} received: stopping after this step and saving", file=sys.stderr, flush=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, request_stop)
        except ValueError:  # not the main thread
            pass

    evaluation = None
    last_stats: dict = {}

    def card_now() -> dict:
        run = {"started": started, "steps": trainer.step - first_step, "pairs": (trainer.step - first_step) * args.batch * world,
               "wall_time_s": round(time.time() - t0, 1), "hardware": hardware, "finest_level": args.finest_level,
               "size": f"{args.size[1]}x{args.size[0]}", "batch": args.batch * world, "lr": args.lr,
               "precision": str(trainer.amp_dtype or torch.float32).replace("torch.", ""),
               "final_loss": last_stats.get("loss"), "final_epe": last_stats.get("epe")}
        return _build_card(trainer, previous, run, evaluation)

    def checkpoint():
        trainer.save(out / "last.pt", card_now())
        if main:
            plot_curves(out)

    tty = sys.stderr.isatty()
    bar = tqdm(total=args.steps, disable=not main, dynamic_ncols=True, mininterval=1.0 if tty else 60.0,
               desc=f"train L{args.finest_level} {args.size[1]}x{args.size[0]}x{args.batch}")
    metrics_file = None
    if main:
        new = not (out / "metrics.csv").exists()
        metrics_file = open(out / "metrics.csv", "a", newline="")
        writer = csv.DictWriter(metrics_file, fieldnames=METRIC_FIELDS)
        if new:
            writer.writeheader()
    window: list = []
    window_start = time.time()
    run_step = 0
    try:
        while not stop["flag"]:
            if args.steps is not None and run_step >= args.steps:
                break
            out_of_time = args.minutes is not None and time.time() - t0 >= args.minutes * 60
            if world > 1:  # every rank must stop at the same step
                flag = torch.tensor([float(out_of_time or stop["flag"])], device=trainer.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                out_of_time = bool(flag.item())
            if out_of_time:
                break
            stats = trainer.train_step()
            run_step += 1
            window.append(stats)
            last_stats = stats
            elapsed = time.time() - window_start
            rate = len(window) * args.batch * world / max(elapsed, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.3g}", epe=f"{stats['epe']:.2f}", pairs_s=f"{rate:.2f}", lr=f"{stats['lr']:.1e}",
                            refresh=False)
            if main and len(window) >= args.log_every:
                row = {k: sum(w[k] for w in window) / len(window) for k in window[0]}
                row.update(step=trainer.step, run_step=run_step, time_s=round(time.time() - t0, 1),
                           wall_total_s=round(float(previous.get("wall_time_s", 0.0)) + time.time() - t0, 1),
                           pairs_per_s=round(rate, 3), finest_level=args.finest_level, skipped=sum(w["skipped"] for w in window))
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in METRIC_FIELDS})
                metrics_file.flush()
                window, window_start = [], time.time()
            if args.eval_every and trainer.step % args.eval_every == 0:
                if main:
                    evaluation = _evaluate(trainer, out, args.eval_root) or evaluation
                if world > 1:
                    dist.barrier()
            if args.save_every and run_step % args.save_every == 0:
                checkpoint()
    finally:
        bar.close()
        if metrics_file is not None:
            metrics_file.close()
    if args.eval_every and run_step > 0 and trainer.step % args.eval_every != 0 and main:
        evaluation = _evaluate(trainer, out, args.eval_root) or evaluation
    if run_step > 0 or (world == 1 and not (out / "last.pt").exists()):
        checkpoint()
    card = card_now()
    if main:
        (out / "card.json").write_text(json.dumps(card, indent=1))
        if args.export:
            save_checkpoint(args.export, trainer.model, card=card, half=True)
            print(f"[train] exported fp16 weights with card to {args.export}", file=sys.stderr)
        wall = time.time() - t0
        print(f"[train] {run_step} steps in {wall / 60:.1f} min ({run_step * args.batch * world / max(wall, 1e-9):.2f} pairs/s), "
              f"total {trainer.step} steps; last loss {last_stats.get('loss', float('nan')):.4g}, "
              f"EPE {last_stats.get('epe', float('nan')):.3f} px; checkpoint {out / 'last.pt'}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    """``python -m lfn_ros.train.trainer ...`` (what torchrun starts)."""
    parser = argparse.ArgumentParser(prog="lfn-ros train", description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
