"""The Trainer: LiteFlowNet, its optimizer, precision and data stream, one step at a time.

Recipe (published, Hui et al. CVPR 2018, section 4, except where noted): the multi-scale L2
endpoint-error loss of :mod:`lfn_ros.train.loss`; Adam (beta1 0.9, beta2 0.999); levels added
stage-wise (train with ``finest_level=3`` first, then resume with 2). Our additions: the data is
:class:`lfn_ros.data.synthetic.SyntheticFlow` instead of FlyingChairs/Things (which cannot be
obtained here), through :class:`lfn_ros.train.stream.PairStream`; a one-cycle learning-rate
schedule fitted to the planned steps (as RAFT does) besides the paper's step halving;
gradient-norm clipping; skipping of non-finite steps; mixed precision (bf16 autocast with
channels_last wherever the device computes bf16 natively, the CPU included: issue 8), with
f-warp's sampling positions, the flow accumulated across levels and the loss kept in fp32.

The run loop around it (time limits, logging, checkpoints, evaluation) is
:mod:`lfn_ros.train.run`; the command line is :mod:`lfn_ros.train.cli`.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path

import torch

from .. import precision as precisions
from ..data.mix import MixedSource
from ..data.synthetic import SyntheticConfig, SyntheticFlow
from ..data.synthetic_config import PRESETS
from ..model.liteflownet import LEVELS, LiteFlowNet
from ..model.weights import WeightsError, apply_state_dict, read_checkpoint, save_checkpoint
from .averaging import WeightAverage
from .config import TrainConfig
from .loss import mean_epe, multiscale_loss, stage_loss
from .stream import PairStream


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


def cost_volume_convolutions(model: LiteFlowNet) -> list:
    """The first convolution of every M: the layer that reads the correlation's cost volume."""
    return [model.matching[f"level{k}"].main[1][0] for k in LEVELS]


def parameter_groups(model: LiteFlowNet, matching_lr_scale: float = 1.0) -> list:
    """Adam parameter groups: the cost-volume convolutions with ``lr_scale = matching_lr_scale``,
    everything else with 1.

    Why (measured, issue 8): the cost volume is a mean over channels of feature products, about
    0.01-0.05 in magnitude, so the convolution reading it needs weights ~30x larger than He
    initialisation to produce useful activations. Adam's steps have a fixed size whatever the
    gradient's scale, so at lr 1e-4 those weights had not moved from their initial size after
    2,600 steps (mean |w| 0.053 at every level, He's value) and M contributed almost nothing:
    level 6's M predicted 0.2 px for a 30 px translation whose cost volume peaked at the right
    displacement. A larger step for these weights only is a reparametrisation; the network and
    its function are unchanged."""
    cost = {id(p) for conv in cost_volume_convolutions(model) for p in conv.parameters()}
    scaled = [p for p in model.parameters() if id(p) in cost]
    rest = [p for p in model.parameters() if id(p) not in cost]
    groups = [{"params": rest, "lr_scale": 1.0}]
    if scaled:
        groups.append({"params": scaled, "lr_scale": float(matching_lr_scale)})
    return groups


def hardware_description(device: torch.device, world: int = 1) -> str:
    """'NVIDIA H100 x2' or 'CPU: <model>, N cores, T torch threads'."""
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


def synthetic_config(config: TrainConfig) -> SyntheticConfig:
    """The data generator's settings for a training config (motion distribution and scale)."""
    return PRESETS[config.motion](motion_scale=config.motion_scale)


class Trainer:
    """One training process (one rank). Usable without the CLI (the tests and benchmarks do).

    Args:
        config: a :class:`TrainConfig`.
        device: torch device of this rank (default ``config.device``).
        rank, world: distributed rank and world size (0, 1 for a single process).
    """

    def __init__(self, config: TrainConfig, device=None, rank: int = 0, world: int = 1) -> None:
        self.config = config
        self.rank, self.world = rank, world
        self.device = torch.device(device or config.device)
        self.model = LiteFlowNet(finest_level=config.finest_level)
        initialise(self.model)  # overwritten by any checkpoint loaded later
        self.precision = precisions.checked(config.precision, self.device, log=self._say)
        self.memory_format = precisions.memory_format(self.device, self.precision)
        self.model.to(self.device, memory_format=self.memory_format)
        self._set_trainable(config.finest_level)
        self.optimizer = torch.optim.Adam(parameter_groups(self.model, config.matching_lr_scale), lr=config.lr,
                                          betas=(0.9, 0.999))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.step = 0  # total optimizer steps over all runs
        self.run_start = 0  # total step at which this run (and its one-cycle schedule) began
        self.time_progress = 0.0  # fraction of the planned minutes used (one-cycle over time)
        self.card: dict = {}
        self.data_config = synthetic_config(config)
        source = SyntheticFlow(*config.sizes[0], device=self.device, seed=config.seed + rank, config=self.data_config)
        if config.scenes3d_share > 0:
            source = MixedSource(source, config.scenes3d_share)
        self.stream = PairStream(source, config.batch, config.sizes, reuse=config.reuse, seed=config.seed + rank)
        self.resumed_from = None
        # The weights' moving average (--ema-decay; lfn_ros.train.averaging), restarted from
        # whatever weights load() brings in.
        self.average = WeightAverage(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self.net = self.model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)

    def _say(self, message: str) -> None:
        if self.rank == 0:
            print(f"[train] {message}", file=sys.stderr)

    @property
    def amp_dtype(self):
        """The autocast dtype, or None for fp32."""
        return None if self.precision == "fp32" else precisions.DTYPES[self.precision]

    def _set_trainable(self, finest_level: int) -> None:
        """Levels finer than ``finest_level`` are not run: freeze them (no gradient, DDP-safe)."""
        for kind in (self.model.matching, self.model.subpixel, self.model.regularization):
            for name, module in kind.items():
                level = int(name.replace("level", ""))
                for param in module.parameters():
                    param.requires_grad_(level >= finest_level)

    # ------------------------------------------------------------------ schedule
    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based, total over runs).

        ``step``: the paper's schedule, ``lr`` halved every ``lr_decay_every`` total steps,
        after a linear warm-up over the first ``warmup`` total steps. ``onecycle``: over this
        run's planned ``steps`` (counted from :attr:`run_start`; or its planned minutes,
        through :attr:`time_progress`), a linear warm-up from
        lr/25 over ``warmup_fraction`` of them, then a cosine decay to lr / final_lr_ratio."""
        c = self.config
        if c.schedule == "onecycle":
            if c.steps:
                progress = min(max(step - self.run_start, 0) / c.steps, 1.0)
            else:  # over the planned wall time (the run loop updates time_progress)
                progress = min(max(self.time_progress, 0.0), 1.0)
            if progress < c.warmup_fraction:
                return c.lr * (0.04 + 0.96 * progress / c.warmup_fraction)
            decay = (progress - c.warmup_fraction) / max(1.0 - c.warmup_fraction, 1e-9)
            floor = c.lr / c.final_lr_ratio
            return floor + (c.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * decay))
        lr = c.lr * 0.5 ** (step // c.lr_decay_every) if c.lr_decay_every > 0 else c.lr
        if c.warmup > 0 and step < c.warmup:
            lr *= (step + 1) / c.warmup
        return lr

    # ------------------------------------------------------------------ checkpoints
    def training_state(self) -> dict:
        """Everything needed to continue exactly: optimizer, scaler, step, data stream state(s).
        Collective under DDP (gathers every rank's stream state)."""
        states = [self.stream.get_state()]
        if self.world > 1:
            import torch.distributed as dist

            states = [None] * self.world
            dist.all_gather_object(states, self.stream.get_state())
        return {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "run_start": self.run_start,
            "stream_states": states,
            "world_size": self.world,
            "ema": self.average.state_dict() if self.average is not None else None,
        }

    def load(self, path, full: bool = True) -> dict:
        """Load a checkpoint. A full one (with training state) restores everything when ``full``;
        a weights-only one restores the weights and the step count from its card and starts a
        fresh data stream (seeded ``seed + rank + 1_000_003 * steps``, not the earlier run's)."""
        payload = read_checkpoint(path)
        apply_state_dict(self.model, payload["state_dict"], source=f"checkpoint {path}")
        self.card = dict(payload.get("card") or {})
        training = payload.get("training")
        if self.average is not None:
            self.average = WeightAverage(self.model, self.average.decay)
            if full and training and training.get("ema"):
                try:
                    self.average.load_state_dict(training["ema"])
                except (KeyError, ValueError) as exc:
                    self._say(f"weight average not continued ({exc}): it starts from the loaded weights")
        if full and training:
            try:
                if len(training["optimizer"]["param_groups"]) == len(self.optimizer.param_groups):
                    self.optimizer.load_state_dict(training["optimizer"])
                else:  # saved before the parameter groups changed: Adam's moments restart
                    self._say("optimizer state has other parameter groups: Adam's moments start afresh")
                if training.get("scaler"):
                    self.scaler.load_state_dict(training["scaler"])
                self.step = int(training["step"])
                self.run_start = int(training.get("run_start", self.step))
                states = training.get("stream_states") or []
            except (KeyError, ValueError, TypeError) as exc:
                raise WeightsError(f"checkpoint {path} has unusable training state: {exc}") from exc
            self._restore_stream(states)
        else:
            self.step = self.run_start = int(self.card.get("steps", 0))
            self.stream.reseed(self.config.seed + self.rank + 1_000_003 * self.step)
        self.resumed_from = str(path)
        return payload

    def _restore_stream(self, states: list) -> None:
        """Continue the saved data stream; a fresh one when the world size, sizes, batch or reuse changed."""
        try:
            if len(states) != self.world or states[self.rank] is None:
                raise ValueError(f"saved by {len(states)} processes, running {self.world}")
            self.stream.set_state(states[self.rank])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            self._say(f"data stream not continued ({exc}): starting a fresh one")
            self.stream.reseed(self.config.seed + self.rank + 1_000_003 * self.step)

    def save(self, path, card: dict, training: bool = True) -> None:
        """Write a checkpoint (rank 0 only; collective under DDP when ``training``)."""
        state = self.training_state() if training else None
        if self.rank == 0:
            save_checkpoint(path, self.model, card=card, training=state)

    # ------------------------------------------------------------------ one step
    def train_step(self, batch: dict | None = None) -> dict:
        """One optimizer step on ``batch`` (default: the stream's next batch). Returns floats:
        loss, epe (finest output vs ground truth, pixels), grad_norm, lr, skipped, loss_l<k>."""
        self.net.train()
        if batch is None:
            batch = self.stream.next()
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        image1 = batch["image1"].contiguous(memory_format=self.memory_format)
        image2 = batch["image2"].contiguous(memory_format=self.memory_format)
        stages = [] if self.config.stage_loss_weight > 0 else None
        with precisions.autocast(self.device, self.precision):
            flow, levels = self.net(image1, image2, return_levels=True, stages=stages)
        # The loss (and the flow it compares) in fp32, outside autocast.
        loss, parts = multiscale_loss(levels, batch["flow"], batch.get("valid"), level_ids=self.model.active_levels,
                                      robust=self.config.robust)
        if stages:
            loss = loss + self.config.stage_loss_weight * stage_loss(stages, batch["flow"], batch.get("valid"))
        self.optimizer.zero_grad(set_to_none=True)
        grad_norm, finite = self._backward_and_update(loss)
        if finite and self.average is not None:
            self.average.update(self.model)
        self.step += 1
        out = {"loss": float(loss.detach()), "epe": float(mean_epe(flow, batch["flow"], batch.get("valid"))),
               "grad_norm": grad_norm, "lr": lr, "skipped": 0 if finite else 1}
        for k in LEVELS:
            out[f"loss_l{k}"] = float(parts[k]) if k in parts else float("nan")
        return out

    def _backward_and_update(self, loss: torch.Tensor) -> tuple[float, bool]:
        """Backward, clip, step; a non-finite loss or gradient skips the update.
        Returns (gradient norm before clipping, whether the step was taken)."""
        if not bool(torch.isfinite(loss)):
            return float("nan"), False
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = self.config.clip if self.config.clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        finite = math.isfinite(grad_norm)
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # fp16: skips the step itself on inf/nan gradients
            self.scaler.update()
        elif finite:
            self.optimizer.step()
        return grad_norm, finite
