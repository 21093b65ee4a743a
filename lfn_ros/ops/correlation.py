"""Cost volume for LiteFlowNet's descriptor matching (M), in pure PyTorch.

LiteFlowNet (Hui et al., CVPR 2018, section 3.1) correlates 1x1 patches of the first image's
features with displaced features of the (warped) second image over a 7x7 window of
displacements, and averages over channels. Two variants are used by the network:

- levels 4-6: every pixel, displacements -3..3 (step 1);
- levels 2-3: on a stride-2 grid, displacements -6..6 in steps of 2. The caller upsamples
  the result x2 with a learned transposed convolution.

Both are computed the same way here: for each of the 49 displacements the second feature map
is shifted (zero outside the frame) and multiplied with the first, one vectorised product per
displacement (:func:`correlation_loop`). This is exact, ONNX-exportable (pad, slice, mul,
mean) and needs no custom kernel.

Training differentiates it through :class:`_Correlation`, an autograd Function with a fused
backward (issue 8): autograd through the loop records 49 slices, products and sums per call
and replays them as 49 zero-filled slice-backwards, copies and adds per input, which made the
cost volume about a third of a bf16 training step on the CPU. The Function keeps only the two
inputs and accumulates both gradients in place over the 49 displacements (in fp32 when the
inputs are bf16/fp16, so 49 rounded partial sums do not lose the small terms). Its result and
gradients are tested against autograd through :func:`correlation_loop`, which stays the
reference.
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


def _check_window(max_displacement: int, stride: int) -> None:
    if max_displacement < 0 or stride < 1:
        raise ValueError(f"need max_displacement >= 0 and stride >= 1, got {max_displacement}, {stride}")


def _displacements(max_displacement: int, stride: int):
    """(channel, top, left) of each displacement inside the input padded by ``max_displacement * stride``."""
    reach = max_displacement * stride
    channel = 0
    for dy in range(-max_displacement, max_displacement + 1):
        for dx in range(-max_displacement, max_displacement + 1):
            yield channel, reach + dy * stride, reach + dx * stride
            channel += 1


def correlation_loop(first: torch.Tensor, second: torch.Tensor, max_displacement: int = 3, stride: int = 1) -> torch.Tensor:
    """The cost volume as 49 shifted products (see :func:`correlation` for the contract).

    Plain tensor ops only, so it exports to ONNX and autograd can differentiate it; it is the
    reference that :class:`_Correlation` is tested against.

    With stride s, every sampled position and every displacement is a multiple of s, so the
    result equals the stride-1 correlation of the two maps subsampled by s: two strided slices
    instead of 49 (strided slices are slow in ONNX Runtime and OpenVINO)."""
    _check_pair(first, second)
    _check_window(max_displacement, stride)
    if stride > 1:
        return correlation_loop(first[:, :, ::stride, ::stride], second[:, :, ::stride, ::stride], max_displacement, 1)
    channels, height, width = first.shape[1:]
    reach = max_displacement * stride
    padded = F.pad(second, (reach, reach, reach, reach))
    anchor = first[:, :, ::stride, ::stride]
    costs = [(anchor * padded[:, :, top : top + height : stride, left : left + width : stride]).sum(dim=1)
             for _, top, left in _displacements(max_displacement, stride)]
    # Summing then scaling once is cheaper than a mean per displacement.
    return torch.stack(costs, dim=1) * (1.0 / channels)


class _Correlation(torch.autograd.Function):
    """:func:`correlation_loop` with a hand-written backward (see the module docstring).

    For output channel k (displacement (top, left) in the padded frame) and the grid positions
    ``(y, x) = (i * stride, j * stride)``::

        d first[:, :, y, x]                  += grad[:, k, i, j] * padded[:, :, top + y, left + x] / C
        d padded[:, :, top + y, left + x]    += grad[:, k, i, j] * first[:, :, y, x] / C
    """

    @staticmethod
    def forward(ctx, first, second, max_displacement: int, stride: int):
        ctx.save_for_backward(first, second)
        ctx.window = (max_displacement, stride)
        return correlation_loop(first, second, max_displacement, stride)

    @staticmethod
    def backward(ctx, grad):
        first, second = ctx.saved_tensors
        max_displacement, stride = ctx.window
        channels, height, width = first.shape[1:]
        reach = max_displacement * stride
        # Accumulate in fp32 when the inputs are reduced precision (autocast): 49 partial sums.
        acc = torch.float32 if first.dtype in (torch.float16, torch.bfloat16) else first.dtype
        fmt = torch.channels_last if first.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        padded = F.pad(second, (reach, reach, reach, reach)).to(acc)
        anchor = first[:, :, ::stride, ::stride].to(acc)
        grad = grad.to(acc) * (1.0 / channels)
        grad_anchor = torch.zeros_like(anchor, memory_format=fmt)
        grad_padded = torch.zeros_like(padded, memory_format=fmt)
        for k, top, left in _displacements(max_displacement, stride):
            window = (slice(None), slice(None), slice(top, top + height, stride), slice(left, left + width, stride))
            g = grad[:, k : k + 1]
            grad_anchor.addcmul_(g, padded[window])
            grad_padded[window].addcmul_(g, anchor)
        grad_first = grad_second = None
        if ctx.needs_input_grad[0]:
            if stride == 1:
                grad_first = grad_anchor.to(first.dtype)
            else:
                grad_first = torch.zeros_like(first, memory_format=fmt)
                grad_first[:, :, ::stride, ::stride] = grad_anchor
        if ctx.needs_input_grad[1]:
            grad_second = grad_padded[:, :, reach : reach + height, reach : reach + width].to(second.dtype)
        return grad_first, grad_second, None, None


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

    When autograd records (training) the fused-backward Function runs; otherwise (inference,
    tracing for ONNX export) the plain loop.
    """
    _check_pair(first, second)
    _check_window(max_displacement, stride)
    if torch.is_grad_enabled() and (first.requires_grad or second.requires_grad) and not torch.jit.is_tracing():
        return _Correlation.apply(first, second, max_displacement, stride)
    return correlation_loop(first, second, max_displacement, stride)


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
