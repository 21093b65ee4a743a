#!/usr/bin/env python3
"""How far a checkpoint follows a rigid shift, and which stage of NetE carries it (issue 8).

    python benchmarks/shift_recovery.py lfn_ros/weights/liteflownet_synthetic.pt runs/long1/last.pt

For each checkpoint: the embedded camera frame at 512x384 and the same scene moved by d px to
the right and d/3 down (d = 4 .. 90), through the network at its recommended level; the mean
horizontal flow and the median endpoint error in the interior. Then, for d = 30, the mean
horizontal flow after M, S and R of every level (px): a level whose M outputs nothing while S
carries the motion has not learnt its descriptor matching. Also the mean |w| of M's first
convolution per level (He's initialisation gives 0.053). Writes
benchmarks/results/shift_recovery.json and prints a table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lfn_ros.io import shifted_pair  # noqa: E402
from lfn_ros.model.weights import load_model  # noqa: E402

SHIFTS = (4, 10, 20, 30, 45, 60, 90)
SIZE = (384, 512)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)


@torch.no_grad()
def probe(path: str) -> dict:
    model, card = load_model(path)
    rows = {}
    for d in SHIFTS:
        first, second = shifted_pair(d, d // 3, size=SIZE, margin=100)
        flow = model(to_tensor(first), to_tensor(second))[0].permute(1, 2, 0).numpy()[40:-40, 60:-60]
        rows[d] = {"mean_u": float(flow[..., 0].mean()),
                   "median_epe": float(np.median(np.linalg.norm(flow - np.array([d, d // 3]), axis=-1)))}
    first, second = shifted_pair(30, 10, size=SIZE, margin=100)
    stages = []
    model(to_tensor(first), to_tensor(second), stages=stages)
    per_stage = {f"L{k}": {"M": float(m[:, 0, 2:-2, 2:-2].mean() * 20), "S": float(s[:, 0, 2:-2, 2:-2].mean() * 20)}
                 for k, m, s in stages}
    weights = {f"L{k}": float(model.matching[f"level{k}"].main[1][0].weight.abs().mean()) for k in (6, 5, 4, 3)}
    return {"steps": card.get("steps"), "level": model.finest_level, "shifts": rows, "stages_at_30px": per_stage,
            "matching_conv1_mean_abs_w": weights}


def main(argv) -> int:
    results = {}
    print(f"{'checkpoint':<48}{'steps':>7} " + " ".join(f"{d:>5}px" for d in SHIFTS) + "   L6 M / S at 30 px")
    for path in argv:
        result = results[path] = probe(path)
        cells = " ".join(f"{result['shifts'][d]['median_epe']:7.1f}" for d in SHIFTS)
        l6 = result["stages_at_30px"]["L6"]
        print(f"{path[-48:]:<48}{result['steps']:>7} {cells}   {l6['M']:5.1f} / {l6['S']:5.1f}")
    print("(cells: median endpoint error in px of a rigid shift of that size)")
    out = ROOT / "benchmarks" / "results" / "shift_recovery.json"
    out.write_text(json.dumps({"command": "python benchmarks/shift_recovery.py " + " ".join(argv), "size": SIZE,
                               "results": results}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
