"""Cost volume for LiteFlowNet's descriptor matching (M), in pure PyTorch.

LiteFlowNet (Hui et al., CVPR 2018, section 3.1) correlates 1x1 patches of the first image's
features with displaced features of the (warped) second image over a 7x7 window of
displacements, and averages over channels. Two variants are used by the network:

- levels 4-6: every pixel, displacements -3..3 (step 1);
- levels 2-3: on a stride-2 grid, displacements -6..6 in steps of 2. The caller upsamples
  the result x2 with a learned transposed convolution.

Both are computed the same way here: for each of the 49 displacements the second feature map
is shifted (zero outside the frame) and multiplied with the first, one vectorised product per
displacement. This is exact, ONNX-exportable (pad, slice, mul, mean) and needs no custom
kernel; memory is one feature map per displacement at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_pair(first: torch.Tensor, second: torch.Tensor) -> None:
    if first.dim() != 4 or first.shape != second.shape:
        raise ValueError(
            "correlation expects two feature maps of the same shape (B, C, H, W), got "
            f"{tuple(first.shape)} and {tuple(second.shape)}"
        )


def correlation(
    first: torch.Tensor,
    second: torch.Tensor,
    max_displacement: int = 3,
    stride: int = 1,
) -> torch.Tensor:
    """Correlate ``first`` with displaced ``second``.

    Args:
        first: (B, C, H, W) features of image 1.
        second: (B, C, H, W) features of image 2 (already warped towards image 1).
        max_displacement: largest displacement in grid steps (3 gives a 7x7 window).
        stride: grid step in pixels, both of the output grid and of the displacements
            (1 at levels 4-6, 2 at levels 2-3).

    Returns:
        (B, (2 * max_displacement + 1) ** 2, ceil(H / stride), ceil(W / stride)) cost volume:
        channel ``(dy + d) * (2d + 1) + (dx + d)`` holds
        ``mean_c first[c, y, x] * second[c, y + dy * stride, x + dx * stride]``
        (zero where the displaced pixel is outside the frame), sampled at
        ``(y, x) = (i * stride, j * stride)``.
    """
    _check_pair(first, second)
    if max_displacement < 0 or stride < 1:
        raise ValueError(f"need max_displacement >= 0 and stride >= 1, got {max_displacement}, {stride}")
    _, channels, height, width = first.shape
    reach = max_displacement * stride
    padded = F.pad(second, (reach, reach, reach, reach))
    anchor = first[:, :, ::stride, ::stride]
    out_h, out_w = anchor.shape[-2:]
    costs = []
    for dy in range(-max_displacement, max_displacement + 1):
        for dx in range(-max_displacement, max_displacement + 1):
            top = reach + dy * stride
            left = reach + dx * stride
            shifted = padded[:, :, top : top + height : stride, left : left + width : stride]
            costs.append((anchor * shifted).sum(dim=1))
    # Summing then scaling once is cheaper than a mean per displacement.
    return torch.stack(costs, dim=1) * (1.0 / channels)


def correlation_reference(
    first: torch.Tensor,
    second: torch.Tensor,
    max_displacement: int = 3,
    stride: int = 1,
) -> torch.Tensor:
    """Brute-force per-pixel loop with the same contract as :func:`correlation`.

    Slow (pure Python over every output pixel and displacement); for tests only.
    """
    _check_pair(first, second)
    batch, channels, height, width = first.shape
    size = 2 * max_displacement + 1
    out_h = (height + stride - 1) // stride
    out_w = (width + stride - 1) // stride
    out = torch.zeros(batch, size * size, out_h, out_w, dtype=first.dtype)
    for i in range(out_h):
        for j in range(out_w):
            y, x = i * stride, j * stride
            for dy in range(-max_displacement, max_displacement + 1):
                for dx in range(-max_displacement, max_displacement + 1):
                    y2, x2 = y + dy * stride, x + dx * stride
                    if 0 <= y2 < height and 0 <= x2 < width:
                        k = (dy + max_displacement) * size + (dx + max_displacement)
                        out[:, k, i, j] = (first[:, :, y, x] * second[:, :, y2, x2]).sum(1) / channels
    return out
