"""LiteFlowNet (Hui, Tang, Loy, "LiteFlowNet: A Lightweight Convolutional Neural Network for
Optical Flow Estimation", CVPR 2018), as published; see docs/architecture.md section 3.

Two sub-networks:

- :class:`NetC`, a 6-level feature pyramid shared by both images (strides 1..32);
- NetE, a cascaded decoder run from level 6 (stride 32) down to level 2 (stride 2). At each
  level k it runs :class:`Matching` (M: f-warp + correlation -> flow residual),
  :class:`SubPixel` (S: f-warp again -> sub-pixel residual) and :class:`Regularization`
  (R: f-lcon, a feature-driven local convolution that smooths the flow while keeping its
  boundaries).

Flow inside NetE is carried in units of *full-resolution pixels / 20* (the paper's scaling of
the ground truth); to warp at level k it is multiplied by ``20 / 2 ** (k - 1)``.

I/O contract (:meth:`LiteFlowNet.forward`): two images (B, 3, H, W), RGB, either uint8 in
[0, 255] or float in [0, 1], any H, W >= 32. They are resized to multiples of 32 internally;
the returned flow is (B, 2, H, W) float32 in pixels of the input resolution, channel 0 = x
(right), channel 1 = y (down), mapping image1 pixels to image2.

For streaming (the ROS node's engine) the two halves are exposed separately:
:meth:`LiteFlowNet.encode_preprocessed` runs NetC once per frame (after
:meth:`LiteFlowNet.preprocess`), and :meth:`LiteFlowNet.decode_bidirectional` runs NetE on two
encodings, forward and backward flow in one batch of two (for the occlusion check), so each
frame's features are computed once and kept for the next pair. The engine and the ONNX export
both use these methods.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.correlation import correlation
from ..ops.resize import multiple_size, resize_images
from .encoding import FrameEncoding
from .variant import PUBLISHED, PUBLISHED_MEANS, Variant, brightness_error, f_warp, image_pyramid, resize_input, upsample_output

#: Levels of NetE, coarse to fine (level k has stride 2 ** (k - 1)).
LEVELS = (6, 5, 4, 3, 2)
#: NetC output channels per level (1..6).
FEATURE_CHANNELS = {1: 32, 2: 32, 3: 64, 4: 96, 5: 128, 6: 192}
#: Flow is regressed as pixels / FLOW_SCALE (paper, section 4: ground truth divided by 20).
FLOW_SCALE = 20.0
#: Last kernel of M and S, and the f-lcon window k, per level (paper, table 1 / deploy file).
KERNEL = {2: 7, 3: 5, 4: 5, 5: 3, 6: 3}
#: RGB means subtracted from [0, 1] images, by the image's role in the pair: the published
#: model's, one per image of a pair (lfn_ros.model.variant, where a port's own means live too).
IMAGE_MEANS = PUBLISHED_MEANS


def warp_scale(level: int) -> float:
    """Factor turning NetE flow units (pixels / 20) into pixels of ``level``: 20 / 2^(k-1)."""
    return FLOW_SCALE / 2 ** (level - 1)


def conv(in_channels: int, out_channels: int, kernel, stride: int = 1, activate: bool = True) -> nn.Module:
    """Convolution with 'same' padding, followed by LeakyReLU(0.1) unless it outputs flow/distances."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    layer = nn.Conv2d(in_channels, out_channels, (kh, kw), stride=stride, padding=(kh // 2, kw // 2))
    if not activate:
        return layer
    return nn.Sequential(layer, nn.LeakyReLU(0.1, inplace=False))


def fp32(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` in fp32 even under autocast: the flow itself is never rounded to bf16/fp16.

    bf16 keeps 8 significant bits, so a flow of 5 NetE units (100 px) would be rounded to
    0.03 units (0.6 px); only the residuals that convolutions predict are reduced precision
    (issue 8: flow accumulation across levels stays fp32)."""
    x = x.float()
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return module(x)
    return module(x)


def upsample_flow_layer() -> nn.ConvTranspose2d:
    """x2 flow upsampling between levels: grouped 4x4 stride-2 transposed conv, no bias."""
    return nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1, groups=2, bias=False)


class NetC(nn.Module):
    """Feature pyramid (paper, section 3: "NetC"); weights shared by both images.

    Input (B, 3, H, W) normalised image with H, W multiples of 32. Output: a tuple of 6 feature
    maps, level k being (B, FEATURE_CHANNELS[k], H / 2^(k-1), W / 2^(k-1)).
    """

    def __init__(self) -> None:
        super().__init__()
        self.level1 = conv(3, 32, 7)
        self.level2 = nn.Sequential(conv(32, 32, 3, 2), conv(32, 32, 3), conv(32, 32, 3))
        self.level3 = nn.Sequential(conv(32, 64, 3, 2), conv(64, 64, 3))
        self.level4 = nn.Sequential(conv(64, 96, 3, 2), conv(96, 96, 3))
        self.level5 = conv(96, 128, 3, 2)
        self.level6 = conv(128, 192, 3, 2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = []
        x = image
        for stage in (self.level1, self.level2, self.level3, self.level4, self.level5, self.level6):
            x = stage(x)
            features.append(x)
        return tuple(features)


class Matching(nn.Module):
    """Descriptor matching M at one level: coarse flow from a feature cost volume.

    Levels 4-6 correlate every pixel over displacements -3..3; levels 2-3 correlate on a
    stride-2 grid with displacements in steps of 2 (reach 6 px) and upsample the 49-channel
    cost volume x2 with a 49-group transposed conv. The LeakyReLU acts on the cost volume as
    correlated, so at levels 2-3 it comes *before* that upsampling (the published deploy
    definition; issue 17 found lfn_ros applying it after). At level 2 the 32-channel features
    first pass a 1x1 conv to 64 channels.
    """

    def __init__(self, level: int, variant: Variant = PUBLISHED) -> None:
        super().__init__()
        self.level = level
        self.warp_mask = variant.warp_mask
        self.summed = variant.cost_volume == "sum"
        self.feat = conv(32, 64, 1) if level == 2 else nn.Identity()
        self.upflow = upsample_flow_layer() if level < 6 else None
        self.upcorr = nn.ConvTranspose2d(49, 49, 4, stride=2, padding=1, groups=49, bias=False) if level <= 3 else None
        self.activate = nn.LeakyReLU(0.1)
        self.main = nn.Sequential(
            conv(49, 128, 3),
            conv(128, 64, 3),
            conv(64, 32, 3),
            conv(32, 2, KERNEL[level], activate=False),
        )

    def forward(self, feat1: torch.Tensor, feat2: torch.Tensor, flow: torch.Tensor | None) -> torch.Tensor:
        """feat1, feat2: (B, C_k, h, w); flow: (B, 2, h/2, w/2) from level k+1 or None at level 6.
        Returns (B, 2, h, w) flow in NetE units (pixels / 20)."""
        feat1 = self.feat(feat1)
        feat2 = self.feat(feat2)
        if flow is not None:
            flow = fp32(self.upflow, flow)
            feat2 = f_warp(feat2, flow, warp_scale(self.level), self.warp_mask)
        cost = correlation(feat1, feat2, max_displacement=3, stride=2 if self.upcorr is not None else 1)
        cost = self.activate(cost * feat1.shape[1] if self.summed else cost)
        if self.upcorr is not None:
            cost = self.upcorr(cost)
        residual = self.main(cost).float()
        return residual if flow is None else flow + residual


class SubPixel(nn.Module):
    """Sub-pixel refinement S at one level: a residual from [feat1, f-warp(feat2), flow]."""

    IN_CHANNELS = {2: 130, 3: 130, 4: 194, 5: 258, 6: 386}

    def __init__(self, level: int, variant: Variant = PUBLISHED) -> None:
        super().__init__()
        self.level = level
        self.warp_mask = variant.warp_mask
        self.feat = conv(32, 64, 1) if level == 2 else nn.Identity()
        self.main = nn.Sequential(
            conv(self.IN_CHANNELS[level], 128, 3),
            conv(128, 64, 3),
            conv(64, 32, 3),
            conv(32, 2, KERNEL[level], activate=False),
        )

    def forward(self, feat1: torch.Tensor, feat2: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """feat1, feat2: (B, C_k, h, w); flow: (B, 2, h, w) NetE units. Returns refined flow."""
        feat1 = self.feat(feat1)
        feat2 = f_warp(self.feat(feat2), flow, warp_scale(self.level), self.warp_mask)
        return flow + self.main(torch.cat([feat1, feat2, flow.to(feat1.dtype)], dim=1)).float()


def neighbourhood(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, 1, H, W) -> (B, k*k, H, W): the k x k neighbours of every pixel (zero outside),
    row-major over the window. Slices instead of F.unfold so the ONNX export stays plain."""
    pad = k // 2
    padded = F.pad(x, (pad, pad, pad, pad))
    height, width = x.shape[-2:]
    return torch.cat([padded[:, :, dy : dy + height, dx : dx + width] for dy in range(k) for dx in range(k)], dim=1)


class Regularization(nn.Module):
    """Flow regularization R at one level: the feature-driven local convolution (f-lcon).

    A trunk on [brightness error, mean-free flow, image-1 features] predicts k^2 distances D
    per pixel; ``g = exp(-D^2)`` normalised over the window is the local filter, applied to
    each flow channel's neighbourhood with a learned 1x1 conv per channel (paper, eq. 6-8).
    """

    def __init__(self, level: int, variant: Variant = PUBLISHED) -> None:
        super().__init__()
        self.level = level
        self.warp_mask, self.brightness = variant.warp_mask, variant.brightness
        k = KERNEL[level]
        self.k = k
        self.feat = conv(FEATURE_CHANNELS[level], 128, 1) if level < 5 else nn.Identity()
        self.main = nn.Sequential(
            conv(131 if level < 6 else 195, 128, 3),
            conv(128, 128, 3),
            conv(128, 64, 3),
            conv(64, 64, 3),
            conv(64, 32, 3),
            conv(32, 32, 3),
        )
        if level < 5:  # separable k x 1 then 1 x k at the fine levels (deploy definition)
            self.dist = nn.Sequential(conv(32, k * k, (k, 1), activate=False), conv(k * k, k * k, (1, k), activate=False))
        else:
            self.dist = conv(32, k * k, k, activate=False)
        self.scale_x = nn.Conv2d(k * k, 1, 1)
        self.scale_y = nn.Conv2d(k * k, 1, 1)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, feat1: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """image1, image2: (B, 3, h, w) normalised images at this level; feat1: (B, C_k, h, w);
        flow: (B, 2, h, w) NetE units. Returns the regularized flow (B, 2, h, w)."""
        brightness = brightness_error(image1, f_warp(image2, flow, warp_scale(self.level), self.warp_mask), self.brightness)
        mean_free = flow - flow.mean(dim=(2, 3), keepdim=True)
        feat1 = self.feat(feat1)
        trunk = self.main(torch.cat([brightness.to(feat1.dtype), mean_free.to(feat1.dtype), feat1], dim=1))
        # The filter and its application in fp32: f-lcon outputs the flow itself, not a residual.
        neg_sq = -self.dist(trunk).float().square()
        # exp(-D^2) normalised over the window; subtracting the max is exact and avoids underflow.
        weights = (neg_sq - neg_sq.amax(dim=1, keepdim=True)).exp()
        inv_sum = 1.0 / weights.sum(dim=1, keepdim=True)
        u = fp32(self.scale_x, weights * neighbourhood(flow[:, 0:1].float(), self.k)) * inv_sum
        v = fp32(self.scale_y, weights * neighbourhood(flow[:, 1:2].float(), self.k)) * inv_sum
        return torch.cat([u, v], dim=1)


class LiteFlowNet(nn.Module):
    """LiteFlowNet: NetC + NetE (levels 6..2), 5.38 M parameters.

    Args:
        finest_level: the last NetE level to run. 2 (default) is the published network (flow
            at 1/2 resolution, upsampled); 3 stops at 1/4 resolution, skipping the most
            expensive level (see docs/results.md for the measured cost). The parameters of
            all levels exist either way, so one checkpoint serves both settings.
        variant: the computation; the published one unless a port's imported weights need
            that port's (lfn_ros.model.variant).
    """

    def __init__(self, finest_level: int = 2, variant: Variant = PUBLISHED) -> None:
        super().__init__()
        if finest_level not in LEVELS:
            raise ValueError(f"finest_level must be one of {LEVELS}, got {finest_level}")
        self.finest_level = finest_level
        self.variant = variant
        self.netc = NetC()
        # Registered fine to coarse (2..6), the order of the published deploy definition (and of
        # sniklaus's port, lfn_ros.model.published).
        order = sorted(LEVELS)
        self.matching = nn.ModuleDict({f"level{k}": Matching(k, variant) for k in order})
        self.subpixel = nn.ModuleDict({f"level{k}": SubPixel(k, variant) for k in order})
        self.regularization = nn.ModuleDict({f"level{k}": Regularization(k, variant) for k in order})
        self.roles = tuple(variant.image_means)
        # (roles, 3, 1, 1): 4-D so that .to(memory_format=channels_last) accepts it.
        self.register_buffer("image_means", torch.tensor([variant.image_means[r] for r in self.roles]).view(-1, 3, 1, 1),
                             persistent=False)

    @property
    def grid_multiple(self) -> int:
        """The network's input is resized to multiples of this (32; a port may use 64)."""
        return self.variant.grid_multiple

    @property
    def active_levels(self) -> tuple[int, ...]:
        return tuple(k for k in LEVELS if k >= self.finest_level)

    def preprocess(self, image: torch.Tensor, size: tuple | None = None, role: str = "stream") -> torch.Tensor:
        """(B, 3, H, W) RGB uint8 [0, 255] or float [0, 1] -> (B, 3, H', W') float, mean-free,
        resized once to ``size`` (H', W'), multiples of 32; default the next multiples of
        :attr:`grid_multiple` of (H, W) (32 as published). A smaller ``size`` runs the network at a reduced resolution (the engine's
        ``scale`` / ``max_width``) without a second resize. ``role``: which of
        :data:`IMAGE_MEANS` to subtract ("first", "second", or "stream" for a frame used as both)."""
        if role not in self.roles:
            raise ValueError(f"role must be one of {self.roles}, got {role!r}")
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(image.shape)}")
        height, width = image.shape[-2:]
        if height < 32 or width < 32:
            raise ValueError(f"images must be at least 32x32 pixels, got {height}x{width}")
        index = self.roles.index(role)
        mean = self.image_means[index:index + 1]
        size = tuple(size) if size is not None else multiple_size(height, width, self.grid_multiple)
        if size[0] % 32 or size[1] % 32 or min(size) < 32:
            raise ValueError(f"network size must be multiples of 32, at least 32, got {size}")
        if self.variant.input_resize == "cv2":  # a port that resizes the raw image first (mmflow)
            image = resize_input(image, size, "cv2")
        if image.dtype == torch.uint8:
            image = image.to(mean.dtype) * (1.0 / 255.0)
        else:
            image = image.to(mean.dtype)
        return resize_images(image - mean, size)

    def encode(self, image: torch.Tensor, role: str = "stream") -> FrameEncoding:
        """Preprocess one batch of frames and run NetC. image, role: see :meth:`preprocess`."""
        return self.encode_preprocessed(self.preprocess(image, role=role), tuple(image.shape[-2:]))

    def encode_pair(self, image1: torch.Tensor, image2: torch.Tensor) -> tuple[FrameEncoding, FrameEncoding]:
        """The two images of a pair, each with its own mean (as published), through NetC in one batch."""
        if image1.shape != image2.shape:
            raise ValueError(f"image1 {tuple(image1.shape)} and image2 {tuple(image2.shape)} differ")
        both = torch.cat([self.preprocess(image1, role="first"), self.preprocess(image2, role="second")], dim=0)
        return self.encode_preprocessed(both, tuple(image1.shape[-2:])).split(image1.shape[0])

    def encode_preprocessed(self, x: torch.Tensor, input_size: tuple) -> FrameEncoding:
        """Run NetC on the output of :meth:`preprocess`; ``input_size`` is the (H, W) before it.

        The image pyramid that f-lcon's brightness error reads is built level by level, each
        level a bilinear x1/2 of the one above (as published; at an exact factor 2 that is a 2x2
        mean, so level k is a box mean over 2^(k-1) pixels, free of the aliasing of a direct resize)."""
        pyramid = self.netc(x)
        features = {k: pyramid[k - 1] for k in LEVELS}
        fine_to_coarse = sorted(LEVELS)
        scaled = image_pyramid(x, [features[k].shape[-2:] for k in fine_to_coarse], self.variant.image_pyramid)
        images = dict(zip(fine_to_coarse, scaled))
        return FrameEncoding(features=features, images=images, input_size=tuple(input_size))

    def decode(self, first: FrameEncoding, second: FrameEncoding, stages: list | None = None) -> list[torch.Tensor]:
        """Run NetE. Returns the flow of every active level, coarse to fine, each
        (B, 2, H'/2^(k-1), W'/2^(k-1)) in NetE units (pixels of the resized input / 20).
        ``stages``: a list to which (level, M's flow, S's flow) is appended per level (training
        supervises M and S too; see lfn_ros.train.loss)."""
        if first.input_size != second.input_size or first.batch != second.batch:
            raise ValueError(
                f"frames differ: {first.input_size} x{first.batch} vs {second.input_size} x{second.batch}"
            )
        flow = None
        flows = []
        for k in self.active_levels:
            key = f"level{k}"
            feat1, feat2 = first.features[k], second.features[k]
            flow_m = self.matching[key](feat1, feat2, flow)
            flow_s = self.subpixel[key](feat1, feat2, flow_m)
            flow = self.regularization[key](first.images[k], second.images[k], feat1, flow_s)
            flows.append(flow)
            if stages is not None:
                stages.append((k, flow_m, flow_s))
        return flows

    def to_pixels(self, finest: torch.Tensor, input_size: tuple, grid_size: tuple | None = None) -> torch.Tensor:
        """Finest NetE flow -> (B, 2, H, W) pixels of the input, in one resize (a port may resize twice).

        Args:
            finest: (B, 2, h, w) NetE units (pixels of the network grid / 20), the grid being
                ``grid_size`` (H', W') (default: the next multiples of :attr:`grid_multiple`).
            input_size: (H, W) of the input the flow is for.
        """
        height, width = input_size
        grid_h, grid_w = grid_size or multiple_size(height, width, self.grid_multiple)
        flow = upsample_output(finest.float() * FLOW_SCALE, (height, width), (grid_h, grid_w), self.variant.output_upsampling)
        if (grid_h, grid_w) == (height, width):
            return flow
        scale = torch.tensor([width / grid_w, height / grid_h], dtype=flow.dtype, device=flow.device)
        return flow * scale.view(1, 2, 1, 1)

    def estimate(self, first: FrameEncoding, second: FrameEncoding) -> torch.Tensor:
        """Flow first -> second, (B, 2, H, W) pixels, from two encodings."""
        return self.to_pixels(self.decode(first, second)[-1], first.input_size, first.grid_size)

    def decode_bidirectional(self, first: FrameEncoding, second: FrameEncoding) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (first -> second) and backward (second -> first) finest NetE flows, each
        (B, 2, h, w) NetE units, computed as one batch of 2B (the occlusion check needs both)."""
        both = self.decode(FrameEncoding.cat([first, second]), FrameEncoding.cat([second, first]))[-1]
        return both[: first.batch], both[first.batch:]

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, return_levels: bool = False, stages: list | None = None):
        """Estimate optical flow from image1 to image2.

        Args:
            image1, image2: (B, 3, H, W) RGB, uint8 [0, 255] or float [0, 1], H, W >= 32.
            return_levels: also return every level's flow (for the multi-scale training loss).

        Returns:
            flow (B, 2, H, W) float pixels; with ``return_levels`` a tuple
            ``(flow, levels)`` where ``levels`` is the list of :meth:`decode`.
        """
        first, second = self.encode_pair(image1, image2)
        levels = self.decode(first, second, stages)
        flow = self.to_pixels(levels[-1], first.input_size)
        return (flow, levels) if return_levels else flow


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
