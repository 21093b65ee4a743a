"""What a benchmark reader returns: :class:`SampleLoader` (a pair not yet read) and
:class:`FlowSample` (the pair read), with the helpers every reader shares.

Sample conventions (all datasets):
    image1, image2: (H, W, 3) uint8 RGB.
    flow: (H, W, 2) float32, pixels, image1 -> image2; channel 0 = x (right), 1 = y (down).
        Pixels without ground truth hold 0.
    valid: (H, W) bool, True where ``flow`` is ground truth to score against.
    occlusion: (H, W) bool, True where a pixel of image1 has no match in image2, or None when
        the dataset has no occlusion ground truth for this pair.
    occlusion_valid: (H, W) bool where ``occlusion`` is defined, or None: then it is defined
        wherever ``valid`` is True.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

from ..io import UNKNOWN_FLOW_THRESHOLD
from ..io.images import decode_image_file

PathLike = Union[str, "os.PathLike[str]"]


class DatasetError(ValueError):
    """A dataset's files disagree with each other (sizes) or cannot be interpreted."""


@dataclass
class FlowSample:
    """One image pair with ground-truth flow (conventions in the module docstring)."""

    name: str
    dataset: str
    image1: np.ndarray
    image2: np.ndarray
    flow: np.ndarray
    valid: np.ndarray
    occlusion: Optional[np.ndarray] = None
    occlusion_valid: Optional[np.ndarray] = None

    @property
    def size(self) -> Tuple[int, int]:
        """(H, W) of the ground truth."""
        return self.flow.shape[0], self.flow.shape[1]


@dataclass(frozen=True)
class SampleLoader:
    """A pair not yet read. ``loader()`` reads the files and returns a :class:`FlowSample`.

    name: "<scene>/<frame>" style id, unique within its dataset.
    dataset: dataset name, e.g. "Sintel-clean".
    key: the two image paths; loaders with the same key show the same images (KITTI noc/occ).
    files: every file the sample reads, by role.
    """

    name: str
    dataset: str
    key: Tuple[str, str]
    files: Dict[str, str] = field(compare=False, hash=False)
    _load: Callable[[], FlowSample] = field(repr=False, compare=False, hash=False)

    def __call__(self) -> FlowSample:
        return self._load()

    def load(self) -> FlowSample:
        return self._load()


# --------------------------------------------------------------------------- helpers

def read_mask(path: PathLike) -> np.ndarray:
    """Read a binary mask PNG (grey or colour, 8 or 16 bit): (H, W) bool, True where the value
    is above half of the type's range (255 = set for 8-bit masks)."""
    image, _ = decode_image_file(path, cv2.IMREAD_UNCHANGED, what="mask")
    if image is None:
        raise DatasetError(f"{path}: cannot be decoded as a mask image")
    if image.ndim == 3:
        image = image.max(axis=2)
    threshold = np.iinfo(image.dtype).max // 2 if np.issubdtype(image.dtype, np.integer) else 0.5
    return image > threshold


def _check_sizes(name: str, **arrays) -> None:
    sizes = {k: tuple(v.shape[:2]) for k, v in arrays.items() if v is not None}
    if len(set(sizes.values())) > 1:
        raise DatasetError(f"{name}: files differ in size: " + ", ".join(f"{k} {s}" for k, s in sizes.items()))


def _finite_flow(flow: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mark non-finite and Middlebury-unknown (> 1e9) components invalid and zero them."""
    with np.errstate(invalid="ignore"):
        known = np.isfinite(flow).all(axis=2) & (np.abs(flow) <= UNKNOWN_FLOW_THRESHOLD).all(axis=2)
    valid = valid & known
    if not known.all():
        flow = flow.copy()
        flow[~known] = 0.0
    return flow, valid


def _loader(dataset: str, name: str, files: Dict[str, Optional[Path]], fn) -> SampleLoader:
    files = {k: str(v) for k, v in files.items() if v is not None}
    return SampleLoader(name=name, dataset=dataset, key=(files["image1"], files["image2"]),
                        files=files, _load=partial(fn, dataset, name, files))


def _frame_number(path: Path, pattern: re.Pattern) -> Optional[int]:
    match = pattern.fullmatch(path.name)
    return int(match.group(1)) if match else None


def _sorted_dirs(folder: Path) -> List[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name) if folder.is_dir() else []
