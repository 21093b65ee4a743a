"""Textures of the synthetic scenes: photographs bundled with scikit-image and procedural patterns.

Used by lfn_ros.data.synthetic; ``rng`` is the SyntheticFlow whose random helpers (_rand,
_uniform, ...) and generator draw every random number, so a seed still gives the same scenes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

#: Photographs scikit-image ships inside its wheel (skimage/data/*), used as textures. Images that
#: skimage.data fetches with pooch are never used (nothing is downloaded), nor are the Middlebury
#: stereo pair (Middlebury is evaluation data) and the tiny or binary images.
BUNDLED_TEXTURES = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
    "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
    "ihc.png", "logo.png", "moon.png", "page.png", "retina.jpg", "rocket.jpg", "text.png",
)


def bundled_texture_files() -> list:
    """Paths of the :data:`BUNDLED_TEXTURES` present in the installed scikit-image."""
    import skimage

    folder = Path(skimage.__file__).resolve().parent / "data"
    return [folder / name for name in BUNDLED_TEXTURES if (folder / name).is_file()]


_PHOTO_CACHE: dict = {}


def load_photo_bank(size: int) -> torch.Tensor:
    """(N, 3, size, size) float32 [0, 1] RGB: the bundled photographs, centre-cropped square and
    resized (area interpolation). Cached per size on the CPU; an empty tensor if none exist."""
    bank = _PHOTO_CACHE.get(size)
    if bank is not None:
        return bank
    import cv2

    images = []
    for path in bundled_texture_files():
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey and RGBA become 3-channel BGR
        if bgr is None:
            continue
        h, w = bgr.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop = bgr[top : top + side, left : left + side]
        interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
        crop = cv2.resize(crop, (size, size), interpolation=interp)
        images.append(crop[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0)
    bank = torch.from_numpy(np.stack(images)) if images else torch.zeros(0, 3, size, size)
    _PHOTO_CACHE[size] = bank
    return bank


def procedural_textures(rng, n: int) -> torch.Tensor:
    """(n, 3, S, S) procedural textures in [0, 1]: value noise, stripes or checkers."""
    S = rng.config.texture_size
    dev = rng.device
    # Multi-octave value noise: random grids of 4, 8, ... cells, each octave added to the
    # running sum after the sum is upsampled x2 (bicubic), weights 1/f^beta.
    beta = rng._uniform(0.2, 1.0, n, 1, 1, 1)
    cells = 4
    acc = rng._randn(n, 2, cells, cells)
    while cells * 2 <= max(4, S // 4):
        cells *= 2
        acc = F.interpolate(acc, size=(cells, cells), mode="bicubic", align_corners=False)
        acc = acc + (cells / 4.0) ** (-beta) * rng._randn(n, 2, cells, cells)
    acc = _normalise(F.interpolate(acc, size=(S, S), mode="bicubic", align_corners=False))
    noise, detail = acc[:, :1], acc[:, 1:]

    coords = (torch.arange(S, device=dev, dtype=torch.float32) - S / 2)
    yy, xx = coords.view(1, 1, S, 1), coords.view(1, 1, 1, S)
    ang = rng._uniform(0.0, math.pi, n, 1, 1, 1)
    period = rng._log_uniform(6.0, 48.0, n, 1, 1, 1)
    sharp = rng._uniform(1.0, 5.0, n, 1, 1, 1)
    cos, sin = torch.cos(ang) * (2 * math.pi / period), torch.sin(ang) * (2 * math.pi / period)
    along = torch.sin(xx * cos + yy * sin + rng._uniform(0, 6.3, n, 1, 1, 1))
    across = torch.sin(yy * cos - xx * sin + rng._uniform(0, 6.3, n, 1, 1, 1))
    kind = torch.multinomial(torch.tensor([0.6, 0.2, 0.2], device=dev).expand(n, 3), 1, generator=rng.generator).view(n, 1, 1, 1)
    periodic = torch.where(kind == 1, along, along * across * 2)  # stripes or a checker
    periodic = 0.5 + 0.5 * torch.tanh(sharp * periodic) / torch.tanh(sharp)
    # Periodic patterns are modulated by the noise so they are not perfectly periodic.
    wobble = rng._uniform(0.0, 0.5, n, 1, 1, 1)
    pattern = torch.where(kind == 0, noise, periodic * (1 - wobble) + noise * wobble)
    c0, c1 = rng._rand(n, 3, 1, 1), rng._rand(n, 3, 1, 1)
    tex = c0 + (c1 - c0) * pattern
    # A little independent detail so channels are not perfectly correlated.
    mix = rng._uniform(0.0, 0.3, n, 3, 1, 1)
    return (tex + mix * (detail - 0.5)).clamp(0, 1)

def layer_textures(rng, n: int, needed: torch.Tensor) -> torch.Tensor:
    """(n, 3, S, S) textures: photographs (random channel order and gains) or procedural.
    Slots where ``needed`` (n,) is False (disabled layers) stay zero."""
    S = rng.config.texture_size
    out = torch.zeros(n, 3, S, S, device=rng.device)
    photo_index = torch.floor(rng._uniform(0, max(rng.photos.shape[0], 1) - 1e-6, n)).long()
    use_photo = (rng._rand(n) < rng.config.photo_prob) & (rng.photos.shape[0] > 0)
    perm = torch.argsort(rng._rand(n, 3), dim=1)
    gain = rng._uniform(0.75, 1.25, n, 3, 1, 1)
    # The random draws above are made for every slot, so the stream does not depend on
    # which slots are used; only the textures actually needed are built.
    proc_slots = torch.nonzero(needed & ~use_photo).flatten()
    photo_slots = torch.nonzero(needed & use_photo).flatten()
    if proc_slots.numel():
        out[proc_slots] = procedural_textures(rng, proc_slots.numel())
    if photo_slots.numel():
        photo = rng.photos.index_select(0, photo_index[photo_slots])
        photo = photo.gather(1, perm[photo_slots].view(-1, 3, 1, 1).expand_as(photo))
        out[photo_slots] = (photo * gain[photo_slots]).clamp(0, 1)
    return out


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """Per-sample min-max normalisation of (N, C, H, W) to [0, 1]."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-6)
