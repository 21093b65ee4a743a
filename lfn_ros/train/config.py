"""Training options as one dataclass (the CLI fills it; scripts and tests build it directly).

Every field has the CLI's default. Sizes are (height, width) tuples internally and
``WIDTHxHEIGHT`` strings on the command line and in the card.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from ..data.synthetic_config import PRESETS
from ..precision import TRAIN_CHOICES as PRECISION_CHOICES

#: Names of the synthetic data sets a run can train on (``--motion``).
MOTIONS = tuple(PRESETS)


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (height, width); both must be multiples of 32, at least 64."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"size must be WIDTHxHEIGHT, e.g. 320x224, got {text!r}") from exc
    if width < 64 or height < 64 or width % 32 or height % 32:
        raise ValueError(f"size {text}: width and height must be multiples of 32, at least 64")
    return height, width


def format_size(size: tuple[int, int]) -> str:
    """(height, width) -> 'WxH'."""
    return f"{size[1]}x{size[0]}"


@dataclass
class TrainConfig:
    """Options of one training run (``lfn-ros train --help`` describes each).

    Data: ``sizes`` are the crop sizes (H, W), used in turn, one per step (mixing crop sizes);
    ``reuse`` is how often each generated pair is used on average (see
    :class:`lfn_ros.train.stream.PairStream`); ``motion_scale`` scales every synthetic motion;
    ``scenes3d_share`` is the probability that a pair is a rendered 3D scene
    (:class:`lfn_ros.data.mix.MixedSource`) instead of a layered one.

    Deep supervision: ``stage_loss_weight`` adds that multiple of the loss on M's and S's own
    outputs (lfn_ros.train.loss.stage_loss) to the published loss.

    Matching: ``matching_lr_scale`` multiplies the learning rate of the first convolution of every
    M (the one that reads the cost volume); see Trainer's parameter groups.

    Schedule: ``schedule`` is ``onecycle`` (linear warm-up over ``warmup_fraction`` of the
    planned ``steps``, then cosine decay to ``lr / final_lr_ratio``; without ``steps`` it spans
    the planned ``minutes`` of wall time instead, for side-by-side runs at equal time) or
    ``step`` (the paper's: constant ``lr`` halved every ``lr_decay_every`` total steps, after
    ``warmup`` steps of linear warm-up).
    """

    out: str = "runs/train"
    resume: str = "auto"
    steps: int | None = None
    minutes: float | None = None
    batch: int = 8
    sizes: tuple = ((320, 448),)
    reuse: int = 1
    lr: float = 1e-4
    schedule: str = "step"
    lr_decay_every: int = 100_000
    warmup: int = 200
    warmup_fraction: float = 0.05
    final_lr_ratio: float = 100.0
    clip: float = 200.0
    ema_decay: float = 0.0
    matching_lr_scale: float = 1.0
    stage_loss_weight: float = 0.0
    finest_level: int = 2
    robust: bool = False
    motion_scale: float = 1.0
    motion: str = "heavy"
    scenes3d_share: float = 0.0
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")
    precision: str = "auto"
    threads: int = 0
    eval_every: int = 0
    eval_root: str | None = None
    eval_pairs: int = 2
    validate_every: int = 0
    save_every: int = 100
    log_every: int = 10
    seed: int = 0
    export: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sizes, str):
            self.sizes = tuple(parse_size(s) for s in self.sizes.split(","))
        self.sizes = tuple(tuple(int(v) for v in s) for s in self.sizes)
        if not self.sizes:
            raise ValueError("at least one crop size is needed")
        if self.schedule not in ("onecycle", "step"):
            raise ValueError(f"schedule must be 'onecycle' or 'step', got {self.schedule!r}")
        if self.schedule == "onecycle" and not (self.steps or self.minutes):
            raise ValueError("the one-cycle schedule needs the planned steps (--steps) or time (--minutes)")
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {self.precision!r}")
        if self.motion not in MOTIONS:
            raise ValueError(f"motion must be one of {MOTIONS}, got {self.motion!r}")
        if not 0.0 <= self.scenes3d_share <= 1.0:
            raise ValueError(f"scenes3d_share must be in [0, 1], got {self.scenes3d_share}")
        if self.reuse < 1 or self.batch < 1:
            raise ValueError(f"reuse and batch must be >= 1, got {self.reuse}, {self.batch}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.finest_level not in (2, 3, 4, 5, 6):
            raise ValueError(f"finest_level must be 2..6, got {self.finest_level}")

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_card(self) -> dict:
        """Plain-Python copy for the weights card (sizes as 'WxH')."""
        values = dataclasses.asdict(self)
        values["sizes"] = [format_size(s) for s in self.sizes]
        return values
