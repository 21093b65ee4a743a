"""A golden test anchored to an independent computation: LiteFlowNet's level 6 (NetC, then M, S
and R of NetE) written again here in plain numpy from the paper's equations (loops and im2col,
no torch), run with the shipped weights on a real pair, against the model's own output.

The golden values are not the code's earlier output: a sign error in f-warp, a swapped concat,
a wrong flow scale, a transposed correlation window or a mis-normalised f-lcon filter in
lfn_ros.model would each disagree with this second implementation.
"""

from __future__ import annotations

import numpy as np
import torch

from lfn_ros.io import shifted_pair
from lfn_ros.model.liteflownet import IMAGE_MEANS
from lfn_ros.model.weights import load_model

H, W = 96, 128  # multiples of 32: no resize; level 6 is 3x4


def conv(x, weight, bias, stride=1):
    """x (C, H, W); weight (O, C, kh, kw); 'same' zero padding of kh//2, kw//2."""
    out_c, in_c, kh, kw = weight.shape
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    out_h = (x.shape[1] + 2 * (kh // 2) - kh) // stride + 1
    out_w = (x.shape[2] + 2 * (kw // 2) - kw) // stride + 1
    columns = np.empty((in_c * kh * kw, out_h * out_w))
    row = 0
    for c in range(in_c):
        for i in range(kh):
            for j in range(kw):
                columns[row] = padded[c, i:i + stride * out_h:stride, j:j + stride * out_w:stride].reshape(-1)
                row += 1
    return (weight.reshape(out_c, -1) @ columns + bias[:, None]).reshape(out_c, out_h, out_w)


def leaky(x):
    return np.where(x > 0, x, 0.1 * x)


def bilinear_sample(image, x, y):
    """image (C, H, W) at float positions x, y (h, w); zero outside, pixel centres at integers."""
    channels, height, width = image.shape
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    out = np.zeros((channels,) + x.shape)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            values = image[:, np.clip(yi, 0, height - 1), np.clip(xi, 0, width - 1)]
            out += np.where(inside, weight, 0.0) * values
    return out


def backward_warp(image, flow):
    """image (C, h, w) sampled at (x + u, y + v) for every pixel; flow (2, h, w) in pixels."""
    ys, xs = np.mgrid[0:image.shape[1], 0:image.shape[2]].astype(float)
    return bilinear_sample(image, xs + flow[0], ys + flow[1])


def downsample(image, factor):
    """Bilinear resize by 1/factor with half-pixel centres (what F.interpolate does, no antialias)."""
    channels, height, width = image.shape
    ys = (np.arange(height // factor) + 0.5) * factor - 0.5
    xs = (np.arange(width // factor) + 0.5) * factor - 0.5
    gx, gy = np.meshgrid(xs, ys)
    return bilinear_sample(image, gx, gy)


def level6(params, image1, image2):
    """Flow at level 6 (NetE units, pixels / 20) of LiteFlowNet with ``params`` (name -> array)."""
    p = lambda name: params[name]  # noqa: E731
    def netc(image, role):
        # The published model subtracts its own mean from each image of the pair.
        x = (image.transpose(2, 0, 1) / 255.0) - np.array(IMAGE_MEANS[role])[:, None, None]
        f = leaky(conv(x, p("netc.level1.0.weight"), p("netc.level1.0.bias")))
        for name, stride in (("netc.level2.0", 2), ("netc.level2.1", 1), ("netc.level2.2", 1), ("netc.level3.0", 2),
                             ("netc.level3.1", 1), ("netc.level4.0", 2), ("netc.level4.1", 1)):
            f = leaky(conv(f, p(name + ".0.weight"), p(name + ".0.bias"), stride))
        f = leaky(conv(f, p("netc.level5.0.weight"), p("netc.level5.0.bias"), 2))
        return leaky(conv(f, p("netc.level6.0.weight"), p("netc.level6.0.bias"), 2)), x

    f1, x1 = netc(image1, "first")
    f2, x2 = netc(image2, "second")
    channels, h, w = f1.shape
    # M: correlation over displacements -3..3 (rows, then columns), mean over channels
    padded = np.pad(f2, ((0, 0), (3, 3), (3, 3)))
    cost = np.stack([(f1 * padded[:, 3 + dy:3 + dy + h, 3 + dx:3 + dx + w]).mean(0)
                     for dy in range(-3, 4) for dx in range(-3, 4)])
    t = leaky(cost)
    for i in (0, 1, 2):
        t = leaky(conv(t, p(f"matching.level6.main.{i}.0.weight"), p(f"matching.level6.main.{i}.0.bias")))
    flow = conv(t, p("matching.level6.main.3.weight"), p("matching.level6.main.3.bias"))
    # S: f-warp of the second features by the flow in level-6 pixels (x 20 / 32), then a residual
    warped = backward_warp(f2, flow * 20 / 32)
    t = np.concatenate([f1, warped, flow])
    for i in (0, 1, 2):
        t = leaky(conv(t, p(f"subpixel.level6.main.{i}.0.weight"), p(f"subpixel.level6.main.{i}.0.bias")))
    flow = flow + conv(t, p("subpixel.level6.main.3.weight"), p("subpixel.level6.main.3.bias"))
    # R: f-lcon from the brightness error, the mean-free flow and the first features
    # The image pyramid halves level by level (levels 2..6: five halvings to stride 32).
    i1, i2 = x1, x2
    for _ in range(5):
        i1, i2 = downsample(i1, 2), downsample(i2, 2)
    brightness = np.sqrt(((i1 - backward_warp(i2, flow * 20 / 32)) ** 2).sum(0, keepdims=True) + 1e-8)
    t = np.concatenate([brightness, flow - flow.mean(axis=(1, 2), keepdims=True), f1])
    for i in range(6):
        t = leaky(conv(t, p(f"regularization.level6.main.{i}.0.weight"), p(f"regularization.level6.main.{i}.0.bias")))
    distance = conv(t, p("regularization.level6.dist.weight"), p("regularization.level6.dist.bias"))
    g = np.exp(-distance ** 2 - (-distance ** 2).max(0, keepdims=True))
    out = []
    for c, name in ((0, "scale_x"), (1, "scale_y")):
        neighbours = np.pad(flow[c], 1)
        stack = np.stack([neighbours[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])
        weight, bias = p(f"regularization.level6.{name}.weight").reshape(-1), p(f"regularization.level6.{name}.bias")
        out.append(((weight[:, None, None] * g * stack).sum(0) + bias) / g.sum(0))
    return np.stack(out)


def test_level_6_matches_an_independent_numpy_implementation():
    model, _ = load_model("default", finest_level=6)
    params = {k: v.double().numpy() for k, v in model.state_dict().items()}
    first, second = shifted_pair(6, -4, size=(H, W))
    expected = level6(params, first.astype(np.float64), second.astype(np.float64))
    to_tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)  # noqa: E731
    with torch.no_grad():
        _, levels = model(to_tensor(first), to_tensor(second), return_levels=True)  # fp32, as it runs
    got = levels[-1][0].numpy()
    assert got.shape == expected.shape == (2, H // 32, W // 32)
    assert np.abs(expected).max() > 1e-3, "a non-trivial output to compare"
    # float32 against float64: agreement to a few 1e-6 NetE units (1e-4 px); an error in the
    # structure is orders of magnitude larger.
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
