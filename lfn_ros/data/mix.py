"""A training source that mixes the 2D layered generator with rendered 3D scenes (issue 19).

The layered scenes of :mod:`lfn_ros.data.synthetic` move in the image plane; a robot's camera
sees a rigid world moving past it (expansion when driving forward, near-field motion, parallax
between depths). :class:`MixedSource` draws each pair of a batch from the rendered scenes of
:mod:`lfn_ros.data.scenes3d` with probability ``share`` and from the layered generator otherwise.

Exact resumption with no state of its own: the number of rendered pairs and the seed of their
scenes are drawn from the layered generator's torch generator, so that generator's state (what
:class:`lfn_ros.train.stream.PairStream` saves and restores) determines the whole batch.
"""

from __future__ import annotations

import numpy as np
import torch

from .scenes3d import Scene3DFlow
from .synthetic import SyntheticFlow


class MixedSource:
    """``sample(batch, size)`` like :class:`SyntheticFlow`'s (image1, image2 (B, 3, H, W) float in
    [0, 1]; flow (B, 2, H, W) pixels; occlusion, valid (B, 1, H, W) bool), with each pair a
    rendered 3D scene with probability ``share``, else a layered one. The rendered pairs come last
    in the batch (the stream picks and flips pairs at random, so order carries nothing).

    Args:
        planar: the layered generator; its ``generator`` drives both sources.
        share: probability in [0, 1] that a pair is rendered from a 3D scene.
    """

    def __init__(self, planar: SyntheticFlow, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"the 3D scenes' share must be in [0, 1], got {share}")
        self.planar = planar
        self.share = float(share)
        self.device = planar.device
        self.scenes = Scene3DFlow(seed=0, device=planar.device)

    @property
    def generator(self) -> torch.Generator:
        """The one generator whose state determines every batch (PairStream reseeds it)."""
        return self.planar.generator

    def get_state(self) -> torch.Tensor:
        return self.planar.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.planar.set_state(state)

    @torch.no_grad()
    def sample(self, batch: int, size: tuple | None = None) -> dict:
        size = tuple(int(v) for v in size) if size else (self.planar.height, self.planar.width)
        draws = torch.rand(batch, generator=self.generator, device=self.device)
        rendered = int((draws < self.share).sum())
        seed = int(torch.randint(0, 1 << 30, (1,), generator=self.generator, device=self.device))
        parts = []
        if batch - rendered:
            parts.append(self.planar.sample(batch - rendered, size))
        if rendered:
            self.scenes.rng = np.random.default_rng(seed)
            parts.append(self.scenes.sample(rendered, size))
        keys = parts[0].keys()
        dtypes = {key: parts[0][key].dtype for key in keys}
        return {key: torch.cat([part[key].to(self.device, dtypes[key]) for part in parts]) for key in keys}
