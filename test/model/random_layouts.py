"""Random state dicts in a published layout, from its committed manifest (key names, order and
shapes), reproducible from a seed with numpy's PCG64 on any machine. The reference runs behind
test/model/golden_sniklaus.json built their weights with this same function."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch


#: Weight gain. Measured on Middlebury Dimetrodon and Sintel: a random LiteFlowNet's flow has std
#: 0.002 px at gain 1 (too small to tell implementations apart), 0.07 at 1.4, 0.27 at 1.6, 1.9 at
#: 1.75; but from 1.6 on the random network turns chaotic (1e-6 of input noise moves its flow by
#: 3e-4 px at 1.6, 0.02 at 1.65, 100 px at 1.75), so float rounding alone would differ. At 1.5 the
#: same noise moves it by 7e-6 px: the largest gain at which a comparison measures the code.
GAIN = 1.5
#: ptlflow's f-lcon has no 1x1 scale convs (a plain sum, where sniklaus's random ones shrink the
#: flow), so its random flows are larger: std 0.37 px at gain 1.0, 2.3 at 1.25, 12 at 1.5 on
#: Middlebury Dimetrodon. And its warping mask ("warped ones >= 1") zeroes about 1.5 % of the
#: samples inside the frame by rounding, which makes it chaotic sooner: changing the input by one
#: float rounding (x / 255 against x * (1 / 255)) moves its own flow by 6e-7 px at gain 1.0,
#: 0.56 px at 1.25 and 5 px at 1.5 (docs/published_weights.md). Gain 1.0 measures the code.
GAIN_PTLFLOW = 1.0


def random_state(manifest: list, seed: int, old_names: bool = False, gain: float = GAIN) -> OrderedDict:
    """{key: tensor} for every [key, shape] of ``manifest``, in its order. Weights are normal with
    std gain / sqrt(fan in) (fan in = elements per output channel), biases normal with std 0.01.
    ``old_names``: 'module' for 'net' (the naming of sniklaus's older files)."""
    rng = np.random.default_rng(seed)
    state = OrderedDict()
    for key, shape in manifest:
        if key.endswith(".bias"):
            values = rng.standard_normal(shape) * 0.01
        else:
            values = rng.standard_normal(shape) * gain / np.sqrt(max(np.prod(shape[1:]), 1))
        name = key.replace("net", "module") if old_names else key
        state[name] = torch.from_numpy(values.astype(np.float32))
    return state


SEQUENCE = Path(__file__).resolve().parents[2] / "lfn_ros" / "data" / "sequence"


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W), as LiteFlowNet.forward takes it."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)


def forward_flow(model, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LiteFlowNet.forward of one pair, (H, W, 2) px."""
    with torch.no_grad():
        return model.eval()(to_tensor(a), to_tensor(b))[0].permute(1, 2, 0).numpy()


def golden_pair() -> tuple[np.ndarray, np.ndarray]:
    """The pair every golden file was recorded on: the embedded sequence's frames 0 and 1, rows
    20:170 and columns 40:240 (200x150, a multiple of neither 32 nor 64)."""
    from lfn_ros.io import read_image

    return tuple(read_image(SEQUENCE / f"frame_000{i}.jpg")[20:170, 40:240] for i in (0, 1))


def golden_flows(model, golden: dict) -> tuple[np.ndarray, np.ndarray]:
    """(lfn_ros's flow, the reference's) at a golden file's points, each (N, 2) px."""
    points = np.array(golden["points_yx"])
    flow = forward_flow(model, *golden_pair())
    return flow[points[:, 0], points[:, 1]], np.array(golden["flow_uv"])
