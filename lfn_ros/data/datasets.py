"""Readers for optical-flow benchmarks with ground truth: MPI-Sintel, FlyingChairs (and
FlyingChairsOcc), Middlebury and KITTI 2012/2015.

These readers exist for EVALUATION ONLY. The data they read (``../shared/data``, see its
MANIFEST.md) measures how a network trained elsewhere generalises; lfn_ros never trains or tunes
on it (docs/architecture.md sections 4 and 7). Training data comes from ``lfn_ros.data.synthetic``.

Every reader returns a list of :class:`SampleLoader`: cheap descriptions of one image pair
(file paths only). Calling a loader reads the files and returns a :class:`FlowSample`, so
``discover`` on a large dataset costs a directory listing, not gigabytes of decoding.

Sample conventions (all datasets): :mod:`lfn_ros.data.samples`.

Layouts understood (``root`` is the folder named in each reader):
    Sintel       root/{clean,final}/<scene>/frame_NNNN.png, root/flow/<scene>/frame_NNNN.flo
                 (forward flow NNNN -> NNNN+1), optional root/occlusions/<scene>/frame_NNNN.png and
                 root/invalid/<scene>/frame_NNNN.png (255 = occluded / invalid). The official
                 archive's root/training/... is found too. A pair exists where both frames and
                 the flow exist; masks are used when present (here: frame 2 only).
    FlyingChairs root/<pair>/img0.ppm, img1.ppm, gt.flo (flownet2 examples), or the official flat
                 layout root/[data/]NNNNN_img1.ppm, NNNNN_img2.ppm, NNNNN_flow.flo.
    FlyingChairsOcc  root/NNNNNNN-img_0.png, -img_1.png, -flow_01.flo, -occ_01.png.
    Middlebury   root/<scene>/frame10.png, frame11.png, flow10.flo; or the official
                 root/other-data/<scene>/... with root/other-gt-flow/<scene>/flow10.flo.
                 Components with |value| > 1e9 are unknown -> invalid.
    KITTI        root/<id>/colored_0_10.png, colored_0_11.png, flow_noc_10.png, flow_occ_10.png;
                 or the official root/[training/]{colored_0|image_2}/NNNNNN_1{0,1}.png with
                 flow_noc/NNNNNN_10.png and flow_occ/NNNNNN_10.png (2012 and 2015).

KITTI ground truth: ``kitti_samples(root, gt="noc")`` scores only pixels visible in both frames
(flow_noc); ``gt="occ"`` scores all pixels with ground truth, occluded ones included (flow_occ,
the KITTI "all" numbers that papers quote). Both carry an occlusion ground truth derived from
the two files: occluded = valid in flow_occ but not in flow_noc, defined where flow_occ is valid.
``discover`` lists both, as "<folder>-noc" (the primary evaluation GT) and "<folder>-occ".
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..io import read_flo, read_image, read_kitti_flow
from .samples import (DatasetError, FlowSample, PathLike, SampleLoader, _check_sizes, _finite_flow, _frame_number,
                      _loader, _sorted_dirs, read_mask)

__all__ = [
    "FlowSample",
    "SampleLoader",
    "DatasetError",
    "sintel_samples",
    "flying_chairs_samples",
    "flying_chairs_occ_samples",
    "middlebury_samples",
    "kitti_samples",
    "discover",
    "read_mask",
]


# --------------------------------------------------------------------------- Sintel

_SINTEL_FRAME = re.compile(r"frame_(\d+)\.png")


def _load_sintel(dataset: str, name: str, files: Dict[str, str]) -> FlowSample:
    image1, image2 = read_image(files["image1"]), read_image(files["image2"])
    flow = read_flo(files["flow"])
    valid = np.ones(flow.shape[:2], dtype=bool)
    if "invalid" in files:
        invalid = read_mask(files["invalid"])
        _check_sizes(name, flow=flow, invalid=invalid)
        valid &= ~invalid
    occlusion = read_mask(files["occlusion"]) if "occlusion" in files else None
    _check_sizes(name, image1=image1, image2=image2, flow=flow, occlusion=occlusion)
    flow, valid = _finite_flow(flow, valid)
    return FlowSample(name, dataset, image1, image2, flow, valid, occlusion)


def _sintel_base(root: Path) -> Path:
    root = Path(root)
    if not (root / "flow").is_dir() and (root / "training" / "flow").is_dir():
        return root / "training"
    return root


def sintel_samples(root: PathLike, pass_name: str = "clean") -> List[SampleLoader]:
    """MPI-Sintel pairs of one rendering pass.

    Args:
        root: the Sintel folder (holding clean/, final/, flow/, ...; or training/ with those).
        pass_name: "clean" or "final" (any folder name next to flow/ works).

    Returns:
        loaders named "<scene>/frame_NNNN" (the first frame), dataset "Sintel-<pass>", sorted by
        scene and frame; one per NNNN with frame NNNN, frame NNNN+1 and flow NNNN all present.
    """
    base = _sintel_base(Path(root))
    dataset = f"Sintel-{pass_name}"
    loaders = []
    for scene_dir in _sorted_dirs(base / pass_name):
        scene = scene_dir.name
        frames = {}
        for path in scene_dir.iterdir():
            number = _frame_number(path, _SINTEL_FRAME)
            if number is not None:
                frames[number] = path
        for number in sorted(frames):
            if number + 1 not in frames:
                continue
            stem = frames[number].stem  # keeps the file's own zero padding
            flow = base / "flow" / scene / f"{stem}.flo"
            if not flow.is_file():
                continue
            occ = base / "occlusions" / scene / f"{stem}.png"
            inv = base / "invalid" / scene / f"{stem}.png"
            files = {"image1": frames[number], "image2": frames[number + 1], "flow": flow,
                     "occlusion": occ if occ.is_file() else None,
                     "invalid": inv if inv.is_file() else None}
            loaders.append(_loader(dataset, f"{scene}/{stem}", files, _load_sintel))
    return loaders


# --------------------------------------------------------------------------- FlyingChairs

_CHAIRS_FLAT = re.compile(r"(\d+)_img1\.ppm")
_CHAIRS_OCC = re.compile(r"(\d+)-img_0\.png")


def _load_plain(dataset: str, name: str, files: Dict[str, str]) -> FlowSample:
    """Two images and a .flo (FlyingChairs, Middlebury); optional occlusion mask."""
    image1, image2 = read_image(files["image1"]), read_image(files["image2"])
    flow = read_flo(files["flow"])
    occlusion = read_mask(files["occlusion"]) if "occlusion" in files else None
    _check_sizes(name, image1=image1, image2=image2, flow=flow, occlusion=occlusion)
    flow, valid = _finite_flow(flow, np.ones(flow.shape[:2], dtype=bool))
    return FlowSample(name, dataset, image1, image2, flow, valid, occlusion)


def flying_chairs_samples(root: PathLike, dataset: str = "FlyingChairs") -> List[SampleLoader]:
    """FlyingChairs pairs.

    Args:
        root: a folder with one sub-folder per pair (img0.ppm, img1.ppm, gt.flo), and/or the
            official flat files NNNNN_img1.ppm, NNNNN_img2.ppm, NNNNN_flow.flo (directly in
            root or in root/data).

    Returns:
        loaders named after the sub-folder or the number NNNNN, sorted by name.
    """
    root = Path(root)
    loaders = []
    for pair_dir in _sorted_dirs(root):
        files = {"image1": pair_dir / "img0.ppm", "image2": pair_dir / "img1.ppm", "flow": pair_dir / "gt.flo"}
        if all(p.is_file() for p in files.values()):
            loaders.append(_loader(dataset, pair_dir.name, files, _load_plain))
    for folder in (root, root / "data"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            match = _CHAIRS_FLAT.fullmatch(path.name)
            if not match:
                continue
            number = match.group(1)
            files = {"image1": path, "image2": folder / f"{number}_img2.ppm", "flow": folder / f"{number}_flow.flo"}
            if all(p.is_file() for p in files.values()):
                loaders.append(_loader(dataset, number, files, _load_plain))
    return sorted(loaders, key=lambda s: s.name)


def flying_chairs_occ_samples(root: PathLike, dataset: str = "FlyingChairsOcc") -> List[SampleLoader]:
    """FlyingChairsOcc pairs: NNNNNNN-img_0.png, -img_1.png, -flow_01.flo and, when present,
    -occ_01.png (255 = pixel of img_0 occluded in img_1) directly inside ``root``."""
    root = Path(root)
    loaders = []
    if not root.is_dir():
        return loaders
    for path in sorted(root.iterdir()):
        match = _CHAIRS_OCC.fullmatch(path.name)
        if not match:
            continue
        number = match.group(1)
        occ = root / f"{number}-occ_01.png"
        files = {"image1": path, "image2": root / f"{number}-img_1.png", "flow": root / f"{number}-flow_01.flo",
                 "occlusion": occ if occ.is_file() else None}
        if all(Path(p).is_file() for k, p in files.items() if p is not None):
            loaders.append(_loader(dataset, number, files, _load_plain))
    return loaders


# --------------------------------------------------------------------------- Middlebury

def middlebury_samples(root: PathLike, dataset: str = "Middlebury") -> List[SampleLoader]:
    """Middlebury pairs frame10 -> frame11 with flow10.flo.

    Args:
        root: a folder with one sub-folder per scene holding frame10.png, frame11.png and
            flow10.flo; or the official root/other-data/<scene>/ with root/other-gt-flow/<scene>/.

    Returns:
        loaders named after the scene; unknown flow (> 1e9) is invalid in the sample.
    """
    root = Path(root)
    loaders = []
    for scene_dir in _sorted_dirs(root):
        files = {"image1": scene_dir / "frame10.png", "image2": scene_dir / "frame11.png", "flow": scene_dir / "flow10.flo"}
        if all(p.is_file() for p in files.values()):
            loaders.append(_loader(dataset, scene_dir.name, files, _load_plain))
    for scene_dir in _sorted_dirs(root / "other-data"):
        files = {"image1": scene_dir / "frame10.png", "image2": scene_dir / "frame11.png",
                 "flow": root / "other-gt-flow" / scene_dir.name / "flow10.flo"}
        if all(p.is_file() for p in files.values()):
            loaders.append(_loader(dataset, scene_dir.name, files, _load_plain))
    return loaders


# --------------------------------------------------------------------------- KITTI

_KITTI_FRAME = re.compile(r"(\d+)_10\.png")


def _load_kitti(dataset: str, name: str, files: Dict[str, str], gt: str) -> FlowSample:
    image1, image2 = read_image(files["image1"]), read_image(files["image2"])
    flow_noc, valid_noc = read_kitti_flow(files["flow_noc"]) if "flow_noc" in files else (None, None)
    flow_occ, valid_occ = read_kitti_flow(files["flow_occ"]) if "flow_occ" in files else (None, None)
    _check_sizes(name, image1=image1, image2=image2, flow_noc=flow_noc, flow_occ=flow_occ)
    if gt == "noc":
        flow, valid = flow_noc, valid_noc
    else:
        flow, valid = flow_occ, valid_occ
    occlusion = occlusion_valid = None
    if valid_noc is not None and valid_occ is not None:
        occlusion = valid_occ & ~valid_noc
        occlusion_valid = valid_occ | valid_noc
    flow, valid = _finite_flow(flow, valid)
    return FlowSample(name, dataset, image1, image2, flow, valid, occlusion, occlusion_valid)


def kitti_samples(root: PathLike, gt: str = "noc", dataset: Optional[str] = None) -> List[SampleLoader]:
    """KITTI 2012 / 2015 training pairs (frame 10 -> frame 11).

    Args:
        root: either a folder with one sub-folder per pair (colored_0_10.png, colored_0_11.png,
            flow_noc_10.png, flow_occ_10.png), or the official root/[training/] with
            colored_0/ (2012) or image_2/ (2015) and flow_noc/, flow_occ/.
        gt: "noc" (only pixels visible in both frames) or "occ" (all pixels with ground truth).
        dataset: name for the samples; default "<root folder name>-<gt>".

    Returns:
        loaders named after the pair id (e.g. "000045"), those that have the ``gt`` file.
    """
    if gt not in ("noc", "occ"):
        raise ValueError(f"gt must be 'noc' or 'occ', got {gt!r}")
    root = Path(root)
    dataset = dataset or f"{root.name}-{gt}"
    loaders = []
    load = partial(_load_kitti_gt, gt)
    for pair_dir in _sorted_dirs(root):
        files = {"image1": pair_dir / "colored_0_10.png", "image2": pair_dir / "colored_0_11.png"}
        for kind in ("noc", "occ"):
            path = pair_dir / f"flow_{kind}_10.png"
            files[f"flow_{kind}"] = path if path.is_file() else None
        if files["image1"].is_file() and files["image2"].is_file() and files[f"flow_{gt}"] is not None:
            loaders.append(_loader(dataset, pair_dir.name, files, load))
    base = root / "training" if (root / "training").is_dir() else root
    for image_folder in ("colored_0", "image_2"):
        folder = base / image_folder
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            match = _KITTI_FRAME.fullmatch(path.name)
            if not match:
                continue
            number = match.group(1)
            files = {"image1": path, "image2": folder / f"{number}_11.png"}
            for kind in ("noc", "occ"):
                flow = base / f"flow_{kind}" / path.name
                files[f"flow_{kind}"] = flow if flow.is_file() else None
            if files["image2"].is_file() and files[f"flow_{gt}"] is not None:
                loaders.append(_loader(dataset, number, files, load))
        break  # a KITTI root has one of the two image folders
    return loaders


def _load_kitti_gt(gt: str, dataset: str, name: str, files: Dict[str, str]) -> FlowSample:
    return _load_kitti(dataset, name, files, gt)


# --------------------------------------------------------------------------- discover

KITTI_FOLDERS = ("KITTI2012", "KITTI2015", "KITTI")
"""Folder names under a data root that :func:`discover` reads as KITTI."""


def discover(root: PathLike) -> Dict[str, List[SampleLoader]]:
    """Every evaluation dataset found under ``root`` (the layout of ``../shared/data``).

    Looks for root/Sintel (-> "Sintel-clean", "Sintel-final"), root/FlyingChairs
    ("FlyingChairs"), root/Middlebury ("Middlebury") and root/KITTI2012, root/KITTI2015 or
    root/KITTI ("<folder>-noc", and "<folder>-occ" with the same images scored on all pixels).
    The 50x50 crops in mmflow_testdata are left out (they are test fixtures, not a benchmark).

    Returns:
        dict from dataset name to its loaders, in the order above; datasets without any pair
        are left out. Nothing is decoded until a loader is called.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"evaluation data root not found: {root}")
    found: Dict[str, List[SampleLoader]] = {}
    sintel = root / "Sintel"
    if sintel.is_dir():
        for pass_name in ("clean", "final"):
            found[f"Sintel-{pass_name}"] = sintel_samples(sintel, pass_name)
    if (root / "FlyingChairs").is_dir():
        found["FlyingChairs"] = flying_chairs_samples(root / "FlyingChairs")
    if (root / "Middlebury").is_dir():
        found["Middlebury"] = middlebury_samples(root / "Middlebury")
    for folder in KITTI_FOLDERS:
        if (root / folder).is_dir():
            for gt in ("noc", "occ"):
                found[f"{folder}-{gt}"] = kitti_samples(root / folder, gt=gt)
    return {name: loaders for name, loaders in found.items() if loaders}
