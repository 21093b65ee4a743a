"""Photometric augmentation and motion blur of synthetic pairs (lfn_ros.data.synthetic): they change no geometry."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_pair(rng, image1: torch.Tensor, image2: torch.Tensor):
    """Blur, then photometric changes (brightness, contrast, gain, gamma, noise), slightly
    different in the two frames; geometry untouched. ``rng``: the SyntheticFlow drawing the numbers."""
    cfg, B = rng.config, image1.shape[0]
    delta = cfg.frame_delta

    def pair(draw, key):
        first = draw()
        return first, first + rng._uniform(-1, 1, *first.shape) * delta.get(key, 0.0)

    # Blur (same sigma up to 10 %), before the photometric changes.
    blur = rng._rand(B) < cfg.blur_prob
    sigma1 = rng._uniform(cfg.blur_sigma[0], cfg.blur_sigma[1], B) * blur
    sigma2 = sigma1 * rng._uniform(0.9, 1.1, B)
    image1, image2 = _gaussian_blur(image1, sigma1), _gaussian_blur(image2, sigma2)

    out = []
    bright = pair(lambda: rng._uniform(-cfg.brightness, cfg.brightness, B, 1, 1, 1), "brightness")
    contrast = pair(lambda: rng._log_uniform(cfg.contrast[0], cfg.contrast[1], B, 1, 1, 1), "contrast")
    gamma = pair(lambda: rng._log_uniform(cfg.gamma[0], cfg.gamma[1], B, 1, 1, 1), "gamma")
    gain = pair(lambda: rng._uniform(1 - cfg.color, 1 + cfg.color, B, 3, 1, 1), "color")
    for i, image in enumerate((image1, image2)):
        mean = image1.mean(dim=(1, 2, 3), keepdim=True)  # frame 1's mean for both: a shared pivot
        image = (image - mean) * contrast[i] + mean + bright[i]
        image = (image * gain[i]).clamp(0.0, 1.0)
        image = image.clamp_min(1e-6).pow(gamma[i].clamp_min(0.1))
        sigma = rng._uniform(cfg.noise[0], cfg.noise[1], B, 1, 1, 1)
        image = image + sigma * rng._randn(*image.shape)
        out.append(image.clamp(0.0, 1.0))
    return out[0], out[1]


def _gaussian_blur(image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma (B,), pixels; sigma <= 0.05 is identity."""
    B, C, H, W = image.shape
    smax = float(sigma.max())
    if smax <= 0.05:
        return image
    radius = max(1, int(math.ceil(3 * smax)))
    offsets = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    s = sigma.clamp_min(1e-3).view(B, 1)
    kernel = torch.exp(-0.5 * (offsets.view(1, -1) / s) ** 2)
    identity = (offsets == 0).to(image.dtype).view(1, -1).expand(B, -1)
    kernel = torch.where((sigma > 0.05).view(B, 1), kernel, identity)
    kernel = kernel / kernel.sum(1, keepdim=True)
    kernel = kernel.repeat_interleave(C, dim=0)  # (B*C, K)
    x = image.reshape(1, B * C, H, W)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(B * C, 1, 1, -1), groups=B * C)
    x = F.conv2d(x, kernel.view(B * C, 1, -1, 1), groups=B * C)
    return x.view(B, C, H, W)


def motion_blur_pair(rng, image1: torch.Tensor, image2: torch.Tensor, motion1: torch.Tensor, motion2: torch.Tensor):
    """Motion blur of some pairs (config.motion_blur_*): each pixel averages the frame along its
    own motion, over the exposure centred on the frame time. motion1 / motion2: (B, 2, H, W)
    pixels per frame interval at frame 1 / frame 2. The two frames share the exposure (one camera)."""
    cfg, B = rng.config, image1.shape[0]
    chosen = rng._rand(B) < cfg.motion_blur_prob
    exposure = rng._uniform(cfg.motion_blur_exposure[0], cfg.motion_blur_exposure[1], B)
    if not bool(chosen.any()):
        return image1, image2
    index = chosen.nonzero().flatten()
    out1, out2 = image1.clone(), image2.clone()
    out1[index] = motion_blur(image1[index], motion1[index], exposure[index], cfg.motion_blur_taps)
    out2[index] = motion_blur(image2[index], motion2[index], exposure[index], cfg.motion_blur_taps)
    return out1, out2


def motion_blur(image: torch.Tensor, motion: torch.Tensor, exposure: torch.Tensor, taps: int) -> torch.Tensor:
    """(B, C, H, W) image averaged over ``taps`` samples at p + s * exposure * motion(p),
    s evenly in [-1/2, 1/2]; exposure (B,) in [0, 1]; edges replicate."""
    B, C, H, W = image.shape
    ys = torch.arange(H, device=image.device, dtype=image.dtype).view(1, H, 1)
    xs = torch.arange(W, device=image.device, dtype=image.dtype).view(1, 1, W)
    reach = motion * exposure.view(B, 1, 1, 1)
    total = torch.zeros_like(image)
    for s in torch.linspace(-0.5, 0.5, max(int(taps), 1)).tolist():
        gx = (xs + s * reach[:, 0]) * (2.0 / max(W - 1, 1)) - 1.0
        gy = (ys + s * reach[:, 1]) * (2.0 / max(H - 1, 1)) - 1.0
        total = total + F.grid_sample(image, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border",
                                      align_corners=True)
    return total / max(int(taps), 1)
