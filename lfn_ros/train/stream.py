"""The trainer's stream of synthetic batches: mixed crop sizes, pair reuse, random flips.

Generating a synthetic batch costs about 40 % of a bf16 training step on a 2-core CPU
(measured by ``benchmarks/train_speed.py``), and a producer thread does not hide it there: both
threads want the same two cores and the step got slower, not faster (issue 8). So the cost is
made small instead, the way every flow dataset is used: each generated pair is seen ``reuse``
times on average (FlyingChairs' 22 k pairs are seen about 200 times each in the published
schedule), and every time with its own random horizontal and vertical flip (exact: the flow's
component along a flipped axis changes sign), so a reused pair is rarely seen twice the same way.

How: the crop sizes are taken in turn, one per step. Each size keeps a pool of its last
``reuse`` generated batches; a fresh batch joins the pool every ``reuse``-th time that size
comes round, and each batch is ``batch`` pairs drawn without replacement from the pool. A pair
thus stays ``reuse * reuse`` rounds and is drawn with probability ``1 / reuse`` each round:
``reuse`` uses on average. ``reuse=1`` is plain generation (every batch fresh).

Resuming is exact without storing images: the state holds the generator state from before each
pooled batch was generated; :meth:`PairStream.set_state` regenerates the pools from them.
"""

from __future__ import annotations

from collections import deque

import torch

from ..data.synthetic import SyntheticFlow


def flip_pairs(batch: dict, horizontal, vertical) -> dict:
    """Flip each pair of ``batch`` (image1, image2: (B, 3, H, W); flow: (B, 2, H, W) pixels;
    occlusion, valid: (B, 1, H, W) bool) where ``horizontal`` / ``vertical`` (B,) bool say so.
    A horizontal flip mirrors x, so the flow's x component changes sign; likewise y."""
    horizontal, vertical = [bool(v) for v in horizontal], [bool(v) for v in vertical]
    return {key: torch.stack([_flipped(batch, i, key, h, v) for i, (h, v) in enumerate(zip(horizontal, vertical))])
            for key in batch}


def _flipped(batch: dict, index: int, key: str, horizontal: bool, vertical: bool) -> torch.Tensor:
    """Pair ``index`` of ``batch[key]``, flipped as asked (the flow's sign too; see :func:`flip_pairs`)."""
    value = batch[key][index]
    dims = [d for d, flip in ((-1, horizontal), (-2, vertical)) if flip]
    if dims:
        value = value.flip(dims)
        if key == "flow":
            value = value * value.new_tensor([-1.0 if horizontal else 1.0, -1.0 if vertical else 1.0]).view(2, 1, 1)
    return value


class PairStream:
    """Training batches from a :class:`SyntheticFlow` (see the module docstring).

    Args:
        source: the generator (its device is where batches live).
        batch: pairs per batch.
        sizes: crop sizes (H, W), used in turn.
        reuse: average number of uses of each generated pair (1: every batch fresh).
        seed: seed of the picks and flips (a CPU generator of its own).
    """

    def __init__(self, source: SyntheticFlow, batch: int, sizes, reuse: int = 1, seed: int = 0) -> None:
        if batch < 1 or reuse < 1:
            raise ValueError(f"batch and reuse must be >= 1, got {batch}, {reuse}")
        self.source = source
        self.batch = int(batch)
        self.sizes = [tuple(int(v) for v in s) for s in sizes]
        if not self.sizes:
            raise ValueError("PairStream needs at least one size")
        self.reuse = int(reuse)
        self.picker = torch.Generator()
        self.picker.manual_seed(int(seed) + 7919)
        self.count = 0  # batches handed out
        self._pools = {size: deque() for size in self.sizes}  # of (generator state, batch)

    def reseed(self, seed: int) -> None:
        """Start a new stream (a run resumed from weights only): drop the pools, reseed both generators."""
        self.source.generator.manual_seed(int(seed))
        self.picker.manual_seed(int(seed) + 7919)
        self.count = 0
        for pool in self._pools.values():
            pool.clear()

    def next(self) -> dict:
        """The next batch: image1, image2 (B, 3, H, W) float [0, 1]; flow (B, 2, H, W) pixels;
        occlusion, valid (B, 1, H, W) bool."""
        size = self.sizes[self.count % len(self.sizes)]
        round_of_size = self.count // len(self.sizes)
        pool = self._pools[size]
        if round_of_size % self.reuse == 0:
            state = self.source.get_state()
            pool.append((state, self.source.sample(self.batch, size)))
            while len(pool) > self.reuse:
                pool.popleft()
        self.count += 1
        if self.reuse == 1:
            chosen = [(pool[-1][1], i) for i in range(self.batch)]
        else:
            pick = torch.randperm(len(pool) * self.batch, generator=self.picker)[: self.batch].tolist()
            chosen = [(pool[i // self.batch][1], i % self.batch) for i in pick]
        flips = (torch.rand(2, self.batch, generator=self.picker) < 0.5).tolist()
        return {key: torch.stack([_flipped(batch, i, key, flips[0][j], flips[1][j]) for j, (batch, i) in enumerate(chosen)])
                for key in chosen[0][0]}

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict:
        """Plain tensors and ints: enough to continue exactly (pools are regenerated)."""
        return {
            "source": self.source.get_state(),
            "picker": self.picker.get_state(),
            "count": self.count,
            "pools": [[f"{h}x{w}", [state for state, _ in self._pools[(h, w)]]] for h, w in self.sizes],
        }

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state` (same sizes, batch and reuse), regenerating the pools."""
        pools = {tuple(int(v) for v in key.split("x")): states for key, states in state["pools"]}
        if set(pools) != set(self.sizes):
            raise ValueError(f"stream state has sizes {sorted(pools)}, this stream {sorted(self.sizes)}")
        for size, states in pools.items():
            pool = self._pools[size]
            pool.clear()
            for generator_state in states:
                self.source.set_state(generator_state)
                pool.append((generator_state, self.source.sample(self.batch, size)))
        self.source.set_state(state["source"])
        self.picker.set_state(state["picker"])
        self.count = int(state["count"])
