"""The paper's published weights in the layouts people download them in, recognised by their keys
and mapped by name onto lfn_ros's LiteFlowNet (issue 17).

Supported:

- ``sniklaus``: sniklaus/pytorch-liteflownet's conversions of the authors' Caffe models
  (``network-default.pytorch``: FlyingChairs + FlyingThings3D; ``network-sintel.pytorch`` and
  ``network-kitti.pytorch``: fine-tuned), a plain state dict with the old ``module*`` or the new
  ``net*`` names (``moduleFeatures.moduleOne.0.weight`` / ``netFeatures.netOne.0.weight``). His
  network takes BGR images, so the first convolution's input channels are reversed here; the
  rest is the published network layer for layer (docs/published_weights.md has the proof:
  flows equal to his implementation's to float rounding).

- ``ptlflow``: hmorimitsu/ptlflow's LiteFlowNet checkpoints (``liteflownet-things/-sintel/-kitti``
  ``.ckpt``, Lightning checkpoints with the state dict under ``state_dict``). Its network departs
  from the published one in five places; the import runs its weights in ptlflow's computation
  (lfn_ros.model.variant.PTLFLOW), proven equal to ptlflow's forward (docs/published_weights.md).

- ``mmflow``: open-mmlab/mmflow's LiteFlowNet checkpoints (``liteflownet_*.pth``, mmcv checkpoints
  with the state dict under ``state_dict``), run in mmflow's computation, its test pipeline's
  resizes included (lfn_ros.model.variant.MMFLOW).

Recognised and refused with a reason (a clear error rather than a silent wrong flow):
LiteFlowNet2/3, PWC-Net, RAFT and FlowNet checkpoints.

A layout is described by a committed manifest (``layouts/<name>.json``: every key, in order, with
its shape), which the tests use to build random state dicts in that layout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .liteflownet import LiteFlowNet
from .variant import MMFLOW, PTLFLOW, PUBLISHED, Variant

LAYOUTS_DIR = Path(__file__).with_name("layouts")


class LayoutError(ValueError):
    """A state dict that is not (exactly) one of the supported published layouts."""


# --------------------------------------------------------------------------- sniklaus

#: NetC level -> his module name.
_SNIKLAUS_LEVELS = {1: "netOne", 2: "netTwo", 3: "netThr", 4: "netFou", 5: "netFiv", 6: "netSix"}
#: Our NetE module -> his ModuleList (index = level - 2).
_SNIKLAUS_DECODER = {"matching": "netMatching", "subpixel": "netSubpixel", "regularization": "netRegularization"}


def sniklaus_name(ours: str) -> str:
    """His key for one of ours. Our convs are ``conv()`` blocks (``N.0`` is the Conv2d inside a
    Sequential with its LeakyReLU); his Sequentials interleave Conv2d and LeakyReLU, so our
    j-th block is his module ``2j``."""
    parts = ours.split(".")
    tail = parts[-1]  # weight / bias
    if parts[0] == "netc":
        level = int(parts[1][len("level"):])
        # netc.level1.0.weight (one block) or netc.level2.J.0.weight (a Sequential of blocks)
        index = 0 if len(parts) == 4 else 2 * int(parts[2])
        return f"netFeatures.{_SNIKLAUS_LEVELS[level]}.{index}.{tail}"
    module, level, part = parts[0], int(parts[1][len("level"):]), parts[2]
    prefix = f"{_SNIKLAUS_DECODER[module]}.{level - 2}"
    if part == "feat":
        return f"{prefix}.netFeat.0.{tail}"
    if part in ("upflow", "upcorr"):
        return f"{prefix}.net{part[:2].capitalize()}{part[2:]}.{tail}"
    if part == "main":
        # Blocks conv() -> 2j; the last conv of M and S has no activation (parts: main.J.weight).
        j = int(parts[3])
        return f"{prefix}.netMain.{2 * j}.{tail}"
    if part == "dist":
        # Separable (levels 2-4): dist.0 / dist.1 are plain convs; levels 5-6: one conv, dist.weight.
        index = parts[3] if len(parts) == 5 else "0"
        return f"{prefix}.netDist.{index}.{tail}"
    if part in ("scale_x", "scale_y"):
        return f"{prefix}.netScale{part[-1].upper()}.{tail}"
    raise KeyError(f"no sniklaus name for {ours}")


def _sniklaus_keys(state: dict) -> dict:
    """His new names for a state dict in either naming (his own run.py renames 'module' -> 'net')."""
    return {key.replace("module", "net"): value for key, value in state.items()}


def _sniklaus_to_lfn_ros(state: dict, model: LiteFlowNet) -> dict:
    mapped = _by_name(_sniklaus_keys(state), model, sniklaus_name,
                      "sniklaus/pytorch-liteflownet layout (LiteFlowNet, 212 tensors, 5,381,969 parameters)")
    return _bgr_to_rgb(mapped)  # his network reads BGR images


def _bgr_to_rgb(mapped: dict) -> dict:
    """Reverse the first convolution's input channels: a port that reads BGR, ours RGB."""
    first = "netc.level1.0.weight"
    mapped[first] = mapped[first].flip(1).contiguous()
    return mapped


# --------------------------------------------------------------------------- ptlflow

def ptlflow_name(ours: str) -> str | None:
    """ptlflow's key for one of ours; None for f-lcon's 1x1 scale convs, which ptlflow lacks.

    Its ModuleLists run coarse to fine (index i = level 6 - i); its Sequentials interleave
    Conv2d and LeakyReLU (our j-th block is its module 2j); one 1x1 conv at level 2
    (``feat2_conv``) feeds both M and S, where we (and the deploy definition) have one each."""
    parts = ours.split(".")
    tail = parts[-1]
    if parts[0] == "netc":
        level = int(parts[1][len("level"):])
        index = 0 if len(parts) == 4 else 2 * int(parts[2])
        return f"feature_net.convs.{level - 1}.{index}.{tail}"
    module, level, part = parts[0], int(parts[1][len("level"):]), parts[2]
    i = 6 - level
    if part == "feat" and module in ("matching", "subpixel"):
        return f"feat2_conv.0.{tail}"
    if module in ("matching", "subpixel"):
        prefix = f"{module}_nets.{i}"
        if part in ("upflow", "upcorr"):
            return f"{prefix}.up_{part[2:]}.{tail}"
        return f"{prefix}.flow_net.{2 * int(parts[3])}.{tail}"
    prefix = f"regularization_nets.{i}"
    if part == "feat":
        return f"{prefix}.feat_conv.0.{tail}"
    if part == "main":
        return f"{prefix}.feat_net.{2 * int(parts[3])}.{tail}"
    if part == "dist":
        return f"{prefix}.dist.{parts[3]}.{tail}" if len(parts) == 5 else f"{prefix}.dist.{tail}"
    if part in ("scale_x", "scale_y"):
        return None
    raise KeyError(f"no ptlflow name for {ours}")


def _ptlflow_to_lfn_ros(state: dict, model: LiteFlowNet) -> dict:
    theirs = {key[len("model."):] if key.startswith("model.") else key: value for key, value in state.items()}
    # Its first convolution reads RGB (ptlflow flips its BGR input), as ours does: no flip.
    return _by_name(theirs, model, ptlflow_name, "ptlflow's LiteFlowNet layout (190 tensors, 5,379,613 parameters)")


# --------------------------------------------------------------------------- mmflow

def mmflow_name(ours: str) -> str | None:
    """mmflow's key for one of ours; None for f-lcon's scale convs, which mmflow lacks.

    Its blocks are mmcv ConvModules (``.conv``); M's and S's last conv is ``pred_flow``; the x2
    upsamplings are buffers of fixed bilinear filters, the flow's owned by the level whose output
    it upsamples (our level k's ``upflow`` is its level k+1's ``upflow_layer``)."""
    parts = ours.split(".")
    tail = parts[-1]
    if parts[0] == "netc":
        level = int(parts[1][len("level"):])
        block = 0 if len(parts) == 4 else int(parts[2])
        return f"encoder.layers.{level - 1}.layers.{block}.conv.{tail}"
    module, level, part = parts[0], int(parts[1][len("level"):]), parts[2]
    prefix = f"decoder.decoders.level{level}"
    if part == "feat":
        return f"{prefix}.{'rfeat_layer' if module == 'regularization' else 'feat_layer'}.conv.{tail}"
    if part == "upflow":
        return f"decoder.decoders.level{level + 1}.upflow_layer.{tail}"
    if part == "upcorr":
        return f"{prefix}.NetM.corr_up.{tail}"
    net = {"matching": "NetM", "subpixel": "NetS", "regularization": "NetR"}[module]
    if part == "main":
        j = int(parts[3])
        last = module != "regularization" and j == 3
        return f"{prefix}.{net}.pred_flow.{tail}" if last else f"{prefix}.{net}.layers.{j}.conv.{tail}"
    if part == "dist":
        return f"{prefix}.NetR.dist_layer.{parts[3]}.{tail}" if len(parts) == 5 else f"{prefix}.NetR.dist_layer.{tail}"
    if part in ("scale_x", "scale_y"):
        return None
    raise KeyError(f"no mmflow name for {ours}")


def _by_name(state: dict, model: LiteFlowNet, name_of, expected: str) -> dict:
    """Our state dict from ``state`` through ``name_of`` (ours -> theirs, None: f-lcon's scale
    convs, which become the plain sum the port computes: weight one, bias zero)."""
    mapped, missing, misshapen, used = {}, [], [], set()
    for name, mine in model.state_dict().items():
        key = name_of(name)
        if key is None:
            mapped[name] = torch.ones_like(mine) if name.endswith("weight") else torch.zeros_like(mine)
            continue
        used.add(key)
        if key not in state:
            missing.append(key)
        elif tuple(state[key].shape) != tuple(mine.shape):
            misshapen.append(f"{key} {tuple(state[key].shape)} (LiteFlowNet: {tuple(mine.shape)})")
        else:
            mapped[name] = state[key].detach().float().clone()
    extra = sorted(k for k, v in state.items() if torch.is_tensor(v) and k not in used)
    if missing or misshapen or extra:
        from .weights import mismatch_text

        raise LayoutError(f"{expected} expected, but " + mismatch_text(missing, extra, misshapen)
                          + ": another network or a damaged file")
    return mapped


def _mmflow_to_lfn_ros(state: dict, model: LiteFlowNet) -> dict:
    mapped = _by_name(state, model, mmflow_name, "mmflow's LiteFlowNet layout (190 tensors, 5,379,613 values)")
    return _bgr_to_rgb(mapped)  # mmcv loads BGR; its LiteFlowNet configs keep to_rgb=False


@dataclass(frozen=True)
class Layout:
    """A published layout: how to recognise it, and where its weights came from."""

    name: str
    repository: str
    description: str
    licence: str
    pattern: str  # a regular expression some key of the layout matches
    supported: bool
    reason: str = ""  # why a recognised layout is refused
    variant: Variant = PUBLISHED  # the computation its weights run in (lfn_ros.model.variant)

    def matches(self, keys) -> bool:
        expression = re.compile(self.pattern)
        return any(expression.search(key) for key in keys)

    def manifest(self) -> list:
        """[[key, shape], ...] of the layout in its own order (committed; the tests' source)."""
        return json.loads((LAYOUTS_DIR / f"{self.name}.json").read_text())["keys"]


LICENCE_LITEFLOWNET = ("The authors' terms (github.com/twhui/LiteFlowNet, 'License and Citation'): the material is "
                       "provided for research purposes only; cite Hui, Tang, Loy, CVPR 2018.")

SNIKLAUS = Layout(
    name="sniklaus",
    repository="https://github.com/sniklaus/pytorch-liteflownet",
    description="sniklaus/pytorch-liteflownet (network-default/-sintel/-kitti.pytorch; 'module*' or 'net*' names)",
    licence=LICENCE_LITEFLOWNET + " sniklaus/pytorch-liteflownet's README asks users to adhere to them "
                                  "and to acknowledge his re-implementation.",
    pattern=r"^(net|module)Features\.(net|module)One\.0\.weight$",
    supported=True,
)

#: Checkpoints people may pass by mistake, recognised so the error can name them. Order matters:
#: the first pattern that matches wins.
PTLFLOW_LAYOUT = Layout(
    name="ptlflow",
    repository="https://github.com/hmorimitsu/ptlflow",
    description="ptlflow's LiteFlowNet (liteflownet-things/-sintel/-kitti .ckpt; 'feature_net.convs.*' names)",
    licence=LICENCE_LITEFLOWNET + " ptlflow's LiteFlowNet README: 'Pretrained weights license: Not specified' "
                                  "(its code is Apache-2.0; the model code's licence is the authors'). Check "
                                  "the terms before any use beyond research.",
    pattern=r"^(model\.)?feature_net\.convs\.0\.0\.weight$",
    supported=True,
    variant=PTLFLOW,
)

MMFLOW_LAYOUT = Layout(
    name="mmflow",
    repository="https://github.com/open-mmlab/mmflow",
    description="mmflow's LiteFlowNet (liteflownet_*.pth; 'encoder.layers.*' / 'decoder.decoders.level*' names)",
    licence=LICENCE_LITEFLOWNET + " mmflow's code is Apache-2.0; its model zoo states no separate licence for "
                                  "the weights. Check the terms before any use beyond research.",
    pattern=r"^encoder\.layers\.0\.layers\.0\.conv\.weight$",
    supported=True,
    variant=MMFLOW,
)

REFUSED = (
    Layout("pwc-net", "", "a PWC-Net checkpoint", "", r"(net|module)Extractor\.|^(net|module)Refiner\.", False,
           "this is PWC-Net, not LiteFlowNet"),
    Layout("raft", "", "a RAFT checkpoint", "", r"^(module\.)?(fnet|cnet|update_block)\.", False,
           "this is RAFT, not LiteFlowNet (RAFT-small is lfn-ros evaluate's peer, not a weights file for the node)"),
)

LAYOUTS = (SNIKLAUS, PTLFLOW_LAYOUT, MMFLOW_LAYOUT)
_MAPPINGS = {"sniklaus": _sniklaus_to_lfn_ros, "ptlflow": _ptlflow_to_lfn_ros, "mmflow": _mmflow_to_lfn_ros}


def unwrap(payload) -> dict:
    """The tensor dict inside a loaded file: the file itself, or its 'state_dict' / 'model' entry
    (Lightning and mmcv checkpoints wrap it)."""
    if isinstance(payload, dict):
        for key in ("state_dict", "model"):
            if isinstance(payload.get(key), dict):
                return payload[key]
        return payload
    raise LayoutError(f"expected a state dict (a dict of tensors), got {type(payload).__name__}")


def detect(state: dict) -> Layout:
    """The supported layout of ``state``; LayoutError naming what it looks like otherwise."""
    keys = [k for k, v in state.items() if torch.is_tensor(v)]
    if not keys:
        raise LayoutError("no tensors in the file: not a weights file")
    for layout in LAYOUTS:
        if layout.matches(keys):
            return layout
    for layout in REFUSED:
        if layout.matches(keys):
            raise LayoutError(f"{layout.description}: {layout.reason}")
    if any("liteflownet" in k.lower() for k in keys) or any(re.match(r"(net|module)(Features|Matching)", k) for k in keys):
        raise LayoutError("a LiteFlowNet-like file of an unknown layout (LiteFlowNet2/3?); expected "
                          f"{_expected()}. First keys: {', '.join(keys[:3])}")
    raise LayoutError(f"not a LiteFlowNet checkpoint of a known layout (expected {_expected()}, or an "
                      f"lfn_ros checkpoint); first keys: {', '.join(keys[:3])}")


def _expected() -> str:
    return " or ".join(layout.description for layout in LAYOUTS)


def import_published(state: dict, model: LiteFlowNet | None = None) -> tuple[dict, Layout]:
    """(our state dict, its layout) for a published state dict; LayoutError when it is none.
    The weights run in ``layout.variant``'s computation."""
    layout = detect(state)
    return _MAPPINGS[layout.name](state, model or LiteFlowNet(variant=layout.variant)), layout
