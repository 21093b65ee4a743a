#!/usr/bin/env python3
"""Figure for docs/training.md: the synthetic displacement distribution (round 1's and today's)
against published reference points, as a fraction of the frame width.

    python tools/motion_histogram.py docs/images/motion_histogram.png

Published reference points (the papers' statements, not their data): Sintel (Butler et al., ECCV
2012) reports speeds in the bands s0-10, s10-40 and s40+ px at 1024 px wide and displacements
beyond 200 px; KITTI (Geiger et al., CVPR 2012; Menze and Geiger, CVPR 2015) beyond 200 px at
1242 px wide; FlyingChairs (Dosovitskiy et al., ICCV 2015) was generated at 512x384 with a
displacement histogram made to resemble Sintel's.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lfn_ros.data.synthetic import SyntheticConfig, SyntheticFlow  # noqa: E402

BUCKETS = [0, 0.01, 0.04, 0.10, 0.15, 0.20, 0.25, 1.0]


def magnitudes(config, height=192, width=256, batches=12, seed=1) -> np.ndarray:
    source = SyntheticFlow(height, width, seed=seed, config=config)
    return torch.cat([source.sample(8)["flow"].norm(dim=1).flatten() for _ in range(batches)]).numpy() / width


def main(out="docs/images/motion_histogram.png") -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {"round 1 (256x192, motion x0.8)": magnitudes(SyntheticConfig.round1(motion_scale=0.8)),
              "today (heavy tail, 256x192)": magnitudes(SyntheticConfig()),
              "synthetic validation (512x384)": magnitudes(SyntheticConfig(), 384, 512, batches=6, seed=987_654_321)}
    table = {name: (np.histogram(m, BUCKETS)[0] / m.size * 100).round(1).tolist() for name, m in series.items()}
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    bins = np.logspace(-4, 0, 60)
    for name, m in series.items():
        hist, edges = np.histogram(np.clip(m, 1e-4, None), bins=bins)
        ax.step(edges[1:], hist / m.size, where="pre", label=name)
    for x, text in ((10 / 1024, "Sintel: 10 px\n(s0-10 | s10-40)"), (40 / 1024, "Sintel: 40 px\n(s40+)"),
                    (200 / 1024, "Sintel > 200 px"), (200 / 1242, "KITTI > 200 px")):
        ax.axvline(x, color="grey", ls=":", lw=1)
        ax.text(x, 1.5e-5, text, rotation=90, fontsize=7, va="bottom", ha="right", color="dimgrey")
    ax.set(xscale="log", yscale="log", xlabel="displacement / frame width", ylabel="fraction of pixels",
           title="Synthetic training displacements vs published reference points")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    Path(out).with_suffix(".json").write_text(json.dumps({"buckets_fraction_of_width": BUCKETS, "percent_of_pixels": table}, indent=1))
    print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
