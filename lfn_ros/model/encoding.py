"""What NetE needs of one frame: NetC's features and the image pyramid (:class:`FrameEncoding`).

Kept apart from the network so that backends and graphs can pass encodings around without the
model's code (the engine stores the previous frame's encoding, docs/architecture.md section 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FrameEncoding:
    """What NetE needs of one frame, computed once by :meth:`LiteFlowNet.encode`.

    features: NetC outputs of levels 2..6, level k (B, FEATURE_CHANNELS[k], H'/2^(k-1), W'/2^(k-1)).
    images: the normalised image resized to levels 2..6, (B, 3, H'/2^(k-1), W'/2^(k-1)).
    input_size: (H, W) of the image before resizing to (H', W') multiples of 32.
    """

    features: dict
    images: dict
    input_size: tuple

    @property
    def batch(self) -> int:
        return next(iter(self.features.values())).shape[0]

    @property
    def grid_size(self) -> tuple:
        """(H', W') the network ran at: 2^(k-1) times the size of the finest level k held
        (an encoding may hold only the levels a decoder uses)."""
        level = min(self.features)
        height, width = self.features[level].shape[-2:]
        return (height * 2 ** (level - 1), width * 2 ** (level - 1))

    def split(self, index: int) -> tuple["FrameEncoding", "FrameEncoding"]:
        """The first ``index`` items of the batch and the rest."""
        def part(values, sl):
            return {k: v[sl] for k, v in values.items()}

        return (FrameEncoding(part(self.features, slice(None, index)), part(self.images, slice(None, index)), self.input_size),
                FrameEncoding(part(self.features, slice(index, None)), part(self.images, slice(index, None)), self.input_size))

    @staticmethod
    def cat(encodings: list["FrameEncoding"]) -> "FrameEncoding":
        """Concatenate encodings of the same size along the batch dimension."""
        sizes = {e.input_size for e in encodings}
        if len(sizes) != 1:
            raise ValueError(f"cannot batch encodings of different input sizes {sorted(sizes)}")
        return FrameEncoding(
            features={k: torch.cat([e.features[k] for e in encodings]) for k in encodings[0].features},
            images={k: torch.cat([e.images[k] for e in encodings]) for k in encodings[0].images},
            input_size=encodings[0].input_size,
        )
