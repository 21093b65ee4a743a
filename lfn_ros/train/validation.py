"""Synthetic validation: a fixed set of generated pairs that recipe decisions are made on.

The real pairs in ``../shared/data`` decide only whether a checkpoint ships; every choice of the
recipe (motion distribution, crop size, schedule, reuse) is made on this set instead (issue 8).
It is drawn from one of the named data sets (``data``: "heavy", the default
:class:`SyntheticConfig` with round 2's heavy-tailed motion, or "round3", which adds fast objects
and motion blur; docs/training.md; or "scenes3d", rendered 3D scenes seen by a moving camera,
lfn_ros.data.scenes3d) with its own seed, at 512x384 (FlyingChairs' size), larger
than the training crops so the motions reach further in pixels than any crop trained on.

EPE is reported overall, by displacement as a fraction of the frame width (the buckets
docs/training.md uses for the histogram: < 1 %, 1-4 %, 4-10 %, >= 10 % of the width), and in
the evaluation's true-motion bins in pixels (s0-10, s10-40, s40+; lfn_ros.evaluate.metrics).
"""

from __future__ import annotations

import torch

from ..data.scenes3d import Scene3DFlow
from ..data.synthetic import SyntheticFlow
from ..data.synthetic_config import PRESETS
from .. import precision as precisions
from ..evaluate.metrics import MOTION_BINS

#: Validation frame size (H, W) and seed; the seed is far from any training seed.
SIZE = (384, 512)
SEED = 987_654_321
#: Displacement buckets, fractions of the width: (name, low, high).
BUCKETS = (("lt1pct", 0.0, 0.01), ("1-4pct", 0.01, 0.04), ("4-10pct", 0.04, 0.10), ("ge10pct", 0.10, float("inf")))

#: The validation sets: the generator's presets and the rendered 3D scenes.
VALIDATION_SETS = (*PRESETS, "scenes3d")

_CACHE: dict = {}


def validation_pairs(pairs: int = 48, size: tuple = SIZE, seed: int = SEED, device="cpu", data: str = "heavy") -> list:
    """The fixed validation batches of the data set ``data`` (a name of VALIDATION_SETS), 8 pairs
    each, generated once per process and cached."""
    if data not in VALIDATION_SETS:
        raise ValueError(f"unknown validation set {data!r}: one of {VALIDATION_SETS}")
    key = (pairs, tuple(size), seed, str(device), data)
    if key not in _CACHE:
        if data == "scenes3d":
            source = Scene3DFlow(seed=seed, device=device)
        else:
            source = SyntheticFlow(*size, device=device, seed=seed, config=PRESETS[data]())
        _CACHE[key] = [source.sample(min(8, pairs - start), tuple(size)) for start in range(0, pairs, 8)]
    return _CACHE[key]


@torch.no_grad()
def validate(model, pairs: int = 48, precision: str = "fp32", device=None, data: str = "heavy") -> dict:
    """EPE (pixels) of ``model`` on the validation pairs of ``data``, overall and per bucket.

    Returns {"epe": float, "epe_<bucket>": float, ..., "epe_s0-10": float, ..., "pairs": int}
    (a bucket or bin without pixels is NaN). The model runs at its own
    ``finest_level`` in ``precision`` (a resolved name), in eval mode; its mode is restored."""
    device = torch.device(device or next(model.parameters()).device)
    was_training = model.training
    model.eval()
    # Fractions of the width, then pixels: one loop over both kinds of bin.
    bins = [(name, low, high, True) for name, low, high in BUCKETS] + [(name, low, high, False) for name, low, high in MOTION_BINS]
    sums = {name: 0.0 for name, *_ in bins}
    counts = {name: 0 for name, *_ in bins}
    total, n = 0.0, 0
    try:
        for batch in validation_pairs(pairs, device=device, data=data):
            with precisions.autocast(device, precision):
                flow = model(batch["image1"], batch["image2"])
            error = (flow.float() - batch["flow"]).norm(dim=1)
            pixels = batch["flow"].norm(dim=1)
            total += float(error.sum())
            n += error.numel()
            for name, low, high, of_width in bins:
                magnitude = pixels / batch["flow"].shape[-1] if of_width else pixels
                inside = (magnitude >= low) & (magnitude < high)
                sums[name] += float(error[inside].sum())
                counts[name] += int(inside.sum())
    finally:
        model.train(was_training)
    result = {"epe": total / max(n, 1), "pairs": pairs}
    for name, *_ in bins:
        result[f"epe_{name}"] = sums[name] / counts[name] if counts[name] else float("nan")
    return result
