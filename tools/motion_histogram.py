#!/usr/bin/env python3
"""Figure for docs/training.md: the synthetic displacement distribution (round 1's and today's)
against published reference points, as a fraction of the frame width.

    python tools/motion_histogram.py docs/images/motion_histogram.png
    python tools/motion_histogram.py --round3 docs/images/motion_histogram_round3.png

The second figure is in pixels at the network's input (the crops trained on): round 2's data
(256x192) against round 3's (fast objects and motion blur, crops 256x192 and 448x320 in turn),
with Sintel's speed bins, and the share of pixels in each bin.

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
from lfn_ros.evaluate.metrics import MOTION_BINS  # noqa: E402

BUCKETS = [0, 0.01, 0.04, 0.10, 0.15, 0.20, 0.25, 1.0]


def magnitudes(config, height=192, width=256, batches=12, seed=1) -> np.ndarray:
    source = SyntheticFlow(height, width, seed=seed, config=config)
    return torch.cat([source.sample(8)["flow"].norm(dim=1).flatten() for _ in range(batches)]).numpy() / width


def plot_histograms(series: dict, bins, markers, text_y: float, xlabel: str, title: str, legend: str, out) -> None:
    """Step histograms (fraction of pixels per bin, log-log) of ``series`` with labelled vertical markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for name, m in series.items():
        hist, edges = np.histogram(np.clip(m, bins[0], None), bins=bins)
        ax.step(edges[1:], hist / m.size, where="pre", label=name)
    for x, text in markers:
        ax.axvline(x, color="grey", ls=":", lw=1)
        ax.text(x, text_y, text, rotation=90, fontsize=7, va="bottom", ha="right", color="dimgrey")
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="fraction of pixels", title=title)
    ax.legend(fontsize=8, loc=legend)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def pixels(config, sizes, batches=8, seed=1) -> np.ndarray:
    """|flow| in pixels of the crops, over ``batches`` batches of 8 per size (H, W)."""
    out = []
    for height, width in sizes:
        source = SyntheticFlow(height, width, seed=seed, config=config)
        out += [source.sample(8)["flow"].norm(dim=1).flatten() for _ in range(batches)]
    return torch.cat(out).numpy()


def round3(out="docs/images/motion_histogram_round3.png") -> int:
    series = {"round 2 data, 256x192 crops": pixels(SyntheticConfig(), [(192, 256)]),
              "round 3 data, 256x192 + 448x320 crops": pixels(SyntheticConfig.round3(), [(192, 256), (320, 448)])}
    table = {name: {bin_name: round(float(((m >= low) & (m < high)).mean() * 100), 2) for bin_name, low, high in MOTION_BINS}
             | {"p99_px": round(float(np.quantile(m, 0.99)), 1), "max_px": round(float(m.max()), 1)}
             for name, m in series.items()}
    markers = ((10, "10 px (s0-10 | s10-40)"), (40, "40 px (s40+)"), (200, "Sintel, KITTI: > 200 px"))
    plot_histograms(series, np.logspace(-2, np.log10(400), 70), markers, 2e-6, "displacement (px at the network's input)",
                    "Round 3's training displacements against round 2's", "lower left", out)
    Path(out).with_suffix(".json").write_text(json.dumps({"percent_of_pixels_per_bin": table}, indent=1))
    print(json.dumps(table, indent=1))
    return 0


def main(out="docs/images/motion_histogram.png") -> int:
    series = {"round 1 (256x192, motion x0.8)": magnitudes(SyntheticConfig.round1(motion_scale=0.8)),
              "today (heavy tail, 256x192)": magnitudes(SyntheticConfig()),
              "synthetic validation (512x384)": magnitudes(SyntheticConfig(), 384, 512, batches=6, seed=987_654_321)}
    table = {name: (np.histogram(m, BUCKETS)[0] / m.size * 100).round(1).tolist() for name, m in series.items()}
    markers = ((10 / 1024, "Sintel: 10 px\n(s0-10 | s10-40)"), (40 / 1024, "Sintel: 40 px\n(s40+)"),
               (200 / 1024, "Sintel > 200 px"), (200 / 1242, "KITTI > 200 px"))
    plot_histograms(series, np.logspace(-4, 0, 60), markers, 1.5e-5, "displacement / frame width",
                    "Synthetic training displacements vs published reference points", "upper left", out)
    Path(out).with_suffix(".json").write_text(json.dumps({"buckets_fraction_of_width": BUCKETS, "percent_of_pixels": table}, indent=1))
    print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--round3"]:
        sys.exit(round3(*sys.argv[2:]))
    sys.exit(main(*sys.argv[1:]))
