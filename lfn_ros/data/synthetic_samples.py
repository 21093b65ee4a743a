"""Synthetic samples as pictures, for the docs and for looking at the data:
``python -m lfn_ros.data.synthetic_samples OUT_DIR`` (COUNT=4 by default)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .synthetic import SyntheticFlow
from .synthetic_config import SyntheticConfig


def write_samples(folder, count: int = 4, height: int = 224, width: int = 320, seed: int = 0, device="cpu",
                  config: SyntheticConfig | None = None) -> list:
    """Write ``count`` samples as PNGs for the docs: ``sample_<i>_image1.png``, ``_image2.png``,
    ``_flow.png`` (Middlebury colour wheel), ``_occlusion.png`` (white = occluded), plus
    ``samples.png``, all of them side by side (one row per sample). Returns the written paths."""
    from ..io import flow_to_color, occlusion_to_image, write_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = SyntheticFlow(height, width, device=device, seed=seed, config=config).sample(count)
    paths, rows = [], []
    for i in range(count):
        im1 = (data["image1"][i].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        im2 = (data["image2"][i].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        color = flow_to_color(data["flow"][i].permute(1, 2, 0).cpu().numpy())
        occ = occlusion_to_image(data["occlusion"][i, 0].cpu().numpy())
        occ3 = np.repeat(occ[:, :, None], 3, axis=2)
        for name, image in (("image1", im1), ("image2", im2), ("flow", color), ("occlusion", occ)):
            path = folder / f"sample_{i}_{name}.png"
            write_image(path, image)
            paths.append(path)
        gap = np.full((height, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([im1, gap, im2, gap, color, gap, occ3], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    sheet = folder / "samples.png"
    write_image(sheet, np.concatenate(rows[:-1], axis=0))
    paths.append(sheet)
    return paths


if __name__ == "__main__":  # python -m lfn_ros.data.synthetic_samples OUT_DIR
    import sys

    out = sys.argv[1] if len(sys.argv) > 1 else "out/synthetic"
    for written in write_samples(out, count=int(os.environ.get("COUNT", "4"))):
        print(written)
