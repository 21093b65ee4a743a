"""Compatibility switches: where a published port of LiteFlowNet computes something the paper's
deploy definition does not, so that its weights run exactly as in the port (issue 17 item 2).

lfn_ros's own network is the published definition (:data:`PUBLISHED`). A port's weights were
trained, or fine-tuned, inside that port's computation, so the import runs them in it: the
checkpoint records a :class:`Variant` and :func:`lfn_ros.model.weights.load_model` builds the
network with it. Nothing here changes the published network; every switch defaults to it.

The switches, each a choice the published network makes one way and a port another way
(docs/published_weights.md lists which port needs which, with the proof of equality):

- ``image_means``: RGB means subtracted from [0, 1] images per role ("first", "second",
  "stream"); the published model has one per image of a pair.
- ``image_pyramid``: how f-lcon's brightness error gets the image at level k: "halving" (each
  level a bilinear x1/2 of the one above, as published) or "direct" (the full image resized
  straight to the level's size).
- ``warp_mask``: "none" (f-warp reads zeros outside the frame, as published), "footprint"
  (IRR's warping layer: a sample whose bilinear footprint leaves the frame is set to zero,
  decided by warping a map of ones and keeping ``>= 1``; see :func:`footprint_warp`) or
  "footprint-tolerant" (mmflow's ``Warp``: the same, keeping ``> 0.9999``).
- ``cost_volume``: "mean" (the correlation divided by the channel count, as published) or "sum"
  (mmflow: ``scaled_corr=False``).
- ``brightness``: "rgb" (``|I1 - warp(I2)|`` over the three channels, as published) or
  "warped-green" (ptlflow: the warped image's channel 1 broadcast against image 1's three).
- ``output_upsampling``: "direct" (the finest flow resized once to the input size, as
  published), "x2-then-resize" (ptlflow: x2 bilinear to the network's grid, then to the input)
  or "grid-then-resize" (mmflow: to the network's grid, then to the input).
- ``input_resize``: "bilinear" (torch, on the float image, as published) or "cv2" (mmflow's test
  pipeline: OpenCV's INTER_LINEAR on the image as given, uint8 included, before normalising).
- ``grid_multiple``: the network's input is resized to multiples of this (32 as published;
  mmflow's test pipeline: 64).

A Variant is stored as a plain dict (``to_dict``), so checkpoints stay ``weights_only``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from ..ops.warp import base_grid, warp

#: RGB means of the published deploy definition (BGR 0.411618, 0.434631, 0.454253 for the first
#: image; 0.410782, 0.433645, 0.452793 for the second; issue 17). A streamed frame is the second
#: image of one pair and the first of the next, yet NetC runs on it once, so the engine
#: normalises it with the midpoint ("stream"; its cost in docs/architecture.md section 3).
PUBLISHED_MEANS = {
    "first": (0.454253, 0.434631, 0.411618),
    "second": (0.452793, 0.433645, 0.410782),
    "stream": (0.453523, 0.434138, 0.411200),
}
ROLES = tuple(PUBLISHED_MEANS)

CHOICES = {
    "image_pyramid": ("halving", "direct"),
    "warp_mask": ("none", "footprint", "footprint-tolerant"),
    "cost_volume": ("mean", "sum"),
    "brightness": ("rgb", "warped-green"),
    "output_upsampling": ("direct", "x2-then-resize", "grid-then-resize"),
    "input_resize": ("bilinear", "cv2"),
    "grid_multiple": (32, 64),
}


class VariantError(ValueError):
    """A variant record that names an unknown switch or value."""


def _means(means) -> dict:
    out = {}
    for role in ROLES:
        value = tuple(float(v) for v in means[role])
        if len(value) != 3:
            raise VariantError(f"image mean for {role!r} must have 3 values (RGB), got {value}")
        out[role] = value
    return out


@dataclass(frozen=True)
class Variant:
    """One LiteFlowNet computation: the published one (the defaults) or a port's."""

    name: str = "published"
    image_means: dict = field(default_factory=lambda: dict(PUBLISHED_MEANS))
    image_pyramid: str = "halving"
    warp_mask: str = "none"
    cost_volume: str = "mean"
    brightness: str = "rgb"
    output_upsampling: str = "direct"
    input_resize: str = "bilinear"
    grid_multiple: int = 32

    def __post_init__(self) -> None:
        for switch, choices in CHOICES.items():
            if getattr(self, switch) not in choices:
                raise VariantError(f"variant {self.name!r}: {switch} must be one of {choices}, got {getattr(self, switch)!r}")
        if set(self.image_means) != set(ROLES):
            raise VariantError(f"variant {self.name!r}: image_means needs the roles {ROLES}, got {sorted(self.image_means)}")
        object.__setattr__(self, "image_means", _means(self.image_means))

    @property
    def is_published(self) -> bool:
        return self == PUBLISHED

    def to_dict(self) -> dict:
        """Plain values (lists, strings) for a weights_only checkpoint."""
        record = asdict(self)
        record["image_means"] = {role: list(mean) for role, mean in self.image_means.items()}
        return record

    @classmethod
    def from_dict(cls, record: dict | None) -> "Variant":
        """The inverse of :meth:`to_dict`; None or {} is the published network."""
        if not record:
            return PUBLISHED
        unknown = sorted(set(record) - set(cls.__dataclass_fields__))
        if unknown:
            raise VariantError(f"unknown variant switches {unknown} (this lfn_ros knows {sorted(cls.__dataclass_fields__)})")
        return cls(**record)

    def describe(self) -> str:
        """'ptlflow: image_pyramid=direct, ...': the switches that differ from the published network."""
        changed = [f"{k}={getattr(self, k)}" for k in CHOICES if getattr(self, k) != getattr(PUBLISHED, k)]
        if self.image_means != PUBLISHED.image_means:
            changed.insert(0, "image_means=" + "/".join(",".join(f"{v:.6f}" for v in self.image_means[r]) for r in ROLES))
        return f"{self.name}: " + (", ".join(changed) if changed else "as published")


PUBLISHED = Variant()

#: ptlflow's LiteFlowNet (hmorimitsu/ptlflow, ptlflow/models/liteflownet/liteflownet.py, read at
#: commit e9cf9bc): one mean for both images (its own comment says so), which, applied to BGR
#: images and then flipped to RGB, is the published first mean in reversed channel order; the
#: pyramid resized directly; IRR's masked warping; the warped image's channel 1 in f-lcon's
#: brightness error; the output upsampled x2 before the resize back. Its f-lcon has no 1x1
#: scale convolutions (a plain sum): the import sets ours to ones and zero bias, which is exact.
PTLFLOW_MEAN = (0.411618, 0.434631, 0.454253)
PTLFLOW = Variant(
    name="ptlflow",
    image_means={role: PTLFLOW_MEAN for role in ROLES},
    image_pyramid="direct",
    warp_mask="footprint",
    brightness="warped-green",
    output_upsampling="x2-then-resize",
)

#: mmflow's LiteFlowNet (open-mmlab/mmflow, mmflow/models/decoders/liteflownet_decoder.py and
#: flow_estimators/liteflownet.py, read at commit 9fb1d2f) with its test pipeline (configs/_base_/
#: datasets/*: InputResize(exponent=6), Normalize(std 255), BGR): one mean for both images (the
#: published first one, in the BGR order it reads), the cost volume not divided by the channel
#: count, the pyramid resized directly, its own masked warp, and the pipeline's OpenCV resizes to
#: multiples of 64 and back. Its x2 upsamplings are fixed bilinear filters stored in the
#: checkpoint (the import copies them into our deconvolutions) and its f-lcon is a softmax without
#: scale convs (ours set to ones): both exact without a switch.
MMFLOW = Variant(
    name="mmflow",
    image_means={role: PUBLISHED_MEANS["first"] for role in ROLES},
    image_pyramid="direct",
    warp_mask="footprint-tolerant",
    cost_volume="sum",
    output_upsampling="grid-then-resize",
    input_resize="cv2",
    grid_multiple=64,
)


# --------------------------------------------------------------------------- the computations

def image_pyramid(image: torch.Tensor, sizes, mode: str) -> list:
    """The normalised image at each of ``sizes`` (fine to coarse), by ``mode`` ("halving":
    each from the previous, as published; "direct": each from ``image``). Bilinear, no
    corner alignment (both the deploy definition and the ports)."""
    images, previous = [], image
    for size in sizes:
        source = previous if mode == "halving" else image
        previous = F.interpolate(source, size=tuple(size), mode="bilinear", align_corners=False)
        images.append(previous)
    return images


def _linspace(n: int, device) -> torch.Tensor:
    """torch.linspace(-1, 1, n) in float32. While an ONNX export traces, the values are made
    here eagerly and enter the graph as a constant, because the exporter computes a traced
    linspace in double, which rounds differently and so changes which samples the mask zeroes."""
    values = torch.linspace(-1.0, 1.0, n, device=device)
    if torch.jit.is_tracing():  # float32 -> Python float -> float32 is exact
        return torch.tensor(values.tolist(), dtype=torch.float32, device=device)
    return values


def footprint_warp(x: torch.Tensor, flow_units: torch.Tensor, scale: float) -> torch.Tensor:
    """IRR's warping layer, as ptlflow runs it: backward warp of ``x`` (B, C, H, W) by
    ``flow_units * scale`` pixels, zero wherever the bilinear footprint leaves the frame.

    The arithmetic follows the port's order step by step (a [-1, 1] linspace grid plus
    ``flow * 2 / (W - 1) / (1 / scale)``), because its mask is "warped ones >= 1": at about
    1.5 % of the pixels *inside* the frame the four bilinear weights sum to 1 - 6e-8, and the
    port zeroes those features. Only the same float operations zero the same pixels.

    Args:
        x: (B, C, H, W) features or image of the second frame, float32.
        flow_units: (B, 2, H, W) flow in NetE units (pixels / 20).
        scale: NetE units -> pixels of this level (``warp_scale(level)``).
    """
    batch, _, height, width = x.shape
    flow_units = flow_units.float()
    divisor = 1.0 / scale
    grid_x = _linspace(width, x.device).view(1, 1, 1, width).expand(batch, 1, height, width)
    grid_y = _linspace(height, x.device).view(1, 1, height, 1).expand(batch, 1, height, width)
    offset = torch.stack([flow_units[:, 0] * 2 / max(width - 1, 1) / divisor,
                          flow_units[:, 1] * 2 / max(height - 1, 1) / divisor]).transpose(0, 1)
    # float32 is a no-op here, but a traced export types the Python scalars above as double and
    # ONNX Runtime's GridSample takes float grids only.
    grid = (torch.cat([grid_x, grid_y], 1) + offset).permute(0, 2, 3, 1).to(torch.float32)
    warped = F.grid_sample(x.float(), grid, align_corners=True)
    ones = torch.ones(x.shape, dtype=torch.float32, device=x.device)
    inside = (F.grid_sample(ones, grid, align_corners=True) >= 1.0).to(torch.float32)
    return (warped * inside).to(x.dtype)


def f_warp(x: torch.Tensor, flow_units: torch.Tensor, scale: float, mask: str = "none") -> torch.Tensor:
    """f-warp of ``x`` by ``flow_units`` (NetE units) times ``scale`` (pixels per unit at this
    level), with a Variant's ``warp_mask``."""
    if mask == "footprint":
        return footprint_warp(x, flow_units, scale)
    if mask == "footprint-tolerant":
        return tolerant_footprint_warp(x, flow_units * scale)
    return warp(x, flow_units * scale)


def tolerant_footprint_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """mmflow's ``Warp(align_corners=True, use_mask=True)``: backward warp of ``x`` (B, C, H, W)
    by ``flow`` (B, 2, H, W) pixels, zero where a warped map of ones is not above 0.9999 (the
    footprint leaves the frame by more than 1e-4 of a sample; unlike IRR's test, rounding cannot
    trip it)."""
    batch, _, height, width = x.shape
    pos = base_grid(height, width, x.device, torch.float32) + flow.float()
    grid = torch.stack([pos[:, 0] * 2.0 / max(width - 1, 1) - 1.0, pos[:, 1] * 2.0 / max(height - 1, 1) - 1.0], dim=-1)
    warped = F.grid_sample(x.float(), grid, align_corners=True)
    ones = torch.ones(x.shape, dtype=torch.float32, device=x.device)
    inside = (F.grid_sample(ones, grid, align_corners=True) > 0.9999).to(torch.float32)
    return (warped * inside).to(x.dtype)


def resize_input(image: torch.Tensor, size: tuple, mode: str) -> torch.Tensor:
    """(B, 3, H, W) image -> (B, 3, H', W'): bilinear in torch, or OpenCV's INTER_LINEAR on the
    image as given (uint8 stays uint8, rounded, as mmflow's test pipeline resizes it before
    normalising); the dtype is kept."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    if mode == "bilinear":
        return F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False)
    import cv2
    import numpy as np

    frames = image.detach().cpu().permute(0, 2, 3, 1).numpy()
    resized = [cv2.resize(np.ascontiguousarray(f), (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
               for f in frames]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).contiguous().to(image.device)


def upsample_output(flow: torch.Tensor, size: tuple, grid: tuple, mode: str) -> torch.Tensor:
    """Finest flow (B, 2, h, w) in pixels of the grid -> (B, 2, H, W) = ``size``, still in grid
    pixels (the caller scales): one resize ("direct"), x2 first ("x2-then-resize"), or to the
    grid ``(H', W')`` first ("grid-then-resize")."""
    if mode == "x2-then-resize":
        flow = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=False)
    elif mode == "grid-then-resize":
        flow = F.interpolate(flow, size=tuple(grid), mode="bilinear", align_corners=False)
    return F.interpolate(flow, size=tuple(size), mode="bilinear", align_corners=False)


def brightness_error(image1: torch.Tensor, warped2: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, 1, h, w) L2 norm over channels of image 1 minus the warped image 2 ("rgb"), or minus
    the warped image's channel 1 broadcast to three ("warped-green", ptlflow)."""
    other = warped2[:, 1:2] if mode == "warped-green" else warped2
    # The epsilon keeps sqrt's gradient finite where the images agree exactly (training);
    # its effect on the value is below 1e-4 where they agree and nil elsewhere.
    return ((image1 - other).square().sum(1, keepdim=True) + 1e-8).sqrt()
