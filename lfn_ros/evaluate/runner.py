"""The evaluation runner: every method on the same pairs of every dataset, scored and tabled.

Time per pair is wall clock around one method call (image in, flow out on the host), after one
untimed warm-up call per method and image size; on a GPU the device is synchronised before and
after. Pairs shared by two datasets (KITTI noc/occ) are computed once and scored against each
ground truth. The "all" row is the unweighted mean over datasets, each pair counted once.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import cv2
import numpy as np

from ..data.datasets import FlowSample, SampleLoader, discover
from .methods import FARNEBACK_PARAMS, METHODS, Method, MethodUnavailable, make_method
from .metrics import MOTION_BINS, add_counts, error_counts, occlusion_counts, summarize_errors, summarize_occlusion
from .report import format_table, plot_results, sanitize, size_text


def match_resolution(flow: np.ndarray, size) -> np.ndarray:
    """Resize a flow (H', W', 2) to the GT's (H, W) and rescale its vectors (no-op when equal)."""
    height, width = size
    if flow.shape[:2] == (height, width):
        return flow
    h, w = flow.shape[:2]
    resized = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    resized[..., 0] *= width / w
    resized[..., 1] *= height / h
    return resized


def select_datasets(root, datasets: Optional[Sequence[str]], max_pairs: Optional[int]) -> Dict[str, list]:
    """{dataset: loaders} found under ``root``, filtered by name and cut to ``max_pairs``."""
    found = discover(root)
    if datasets is None:
        selected = dict(found)
    else:
        unknown = [d for d in datasets if d not in found]
        if unknown:
            raise ValueError(f"dataset(s) {', '.join(unknown)} not found under {root}; available: {', '.join(found) or 'none'}")
        selected = {d: found[d] for d in datasets}
    if max_pairs is not None:
        if max_pairs < 1:
            raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
        selected = {d: loaders[:max_pairs] for d, loaders in selected.items()}
    if not selected:
        raise ValueError(f"no evaluation dataset found under {root}")
    return selected


def build_methods(methods: Sequence[str], weights, device: str, finest_level, engine, out) -> tuple[dict, dict]:
    """({name: Method} that can run here, {name: reason} for those that cannot)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    if not methods:
        raise ValueError("no method to evaluate")
    runners: Dict[str, Method] = {}
    skipped: Dict[str, str] = {}
    for name in dict.fromkeys(methods):
        try:
            runners[name] = make_method(name, weights=weights, device=device, finest_level=finest_level, engine=engine)
        except MethodUnavailable as exc:
            skipped[name] = str(exc)
            print(f"{name} skipped: {exc}", file=out)
    if not runners:
        raise ValueError("none of the requested methods can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return runners, skipped


class PairRunner:
    """Runs every method on a pair once: warm-up per image size, timing, and a cache for pairs
    that several datasets share (forgotten once the last of them has used it)."""

    def __init__(self, runners: Dict[str, Method], selected: Dict[str, list], warmup: bool) -> None:
        self.runners = runners
        self.warmup = warmup
        self.uses: Dict[tuple, int] = {}
        for loaders in selected.values():
            for loader in loaders:
                self.uses[loader.key] = self.uses.get(loader.key, 0) + 1
        self.remaining = dict(self.uses)
        self.cache: Dict[tuple, tuple] = {}
        self.warmed: set = set()

    def __call__(self, loader: SampleLoader, sample: FlowSample) -> Dict[str, tuple]:
        """{method: (flow (H, W, 2) at the GT's resolution, occlusion or None, ms)}."""
        shared = self.uses[loader.key] > 1
        outputs = {}
        for name, method in self.runners.items():
            cached = self.cache.get((name, loader.key)) if shared else None
            if cached is None:
                if self.warmup and (name, sample.image1.shape) not in self.warmed:
                    method.fn(sample.image1, sample.image2)
                self.warmed.add((name, sample.image1.shape))
                cached = method.timed(sample.image1, sample.image2)
                if shared:
                    self.cache[(name, loader.key)] = cached
            flow, occlusion, ms = cached
            outputs[name] = (match_resolution(np.asarray(flow, dtype=np.float32), sample.size), occlusion, ms)
        if shared:
            self.remaining[loader.key] -= 1
            if self.remaining[loader.key] <= 0:
                for name in self.runners:
                    self.cache.pop((name, loader.key), None)
        return outputs


class DatasetScore:
    """Summed error and occlusion counts of one method over one dataset's pairs."""

    def __init__(self) -> None:
        self.errors: dict = {"n": 0}
        self.occlusion = {"tp": 0, "fp": 0, "fn": 0}
        self.has_occlusion = False
        self.times: list = []
        self.per_pair: list = []

    def add(self, name: str, sample: FlowSample, flow: np.ndarray, occlusion, ms: float) -> None:
        counts = error_counts(flow, sample.flow, sample.valid)
        add_counts(self.errors, counts)
        self.times.append(ms)
        entry = {"name": name, **summarize_errors(counts), "ms": ms}
        if occlusion is not None and sample.occlusion is not None:
            region = sample.occlusion_valid if sample.occlusion_valid is not None else sample.valid
            occlusion = np.asarray(occlusion, dtype=bool)
            if occlusion.shape != sample.occlusion.shape:
                occlusion = cv2.resize(occlusion.astype(np.uint8), sample.occlusion.shape[::-1],
                                       interpolation=cv2.INTER_NEAREST).astype(bool)
            counts = occlusion_counts(occlusion, sample.occlusion, region)
            for key, value in counts.items():
                self.occlusion[key] += value
            self.has_occlusion = True
            entry["occ_f1"] = summarize_occlusion(counts).f1
        self.per_pair.append(entry)

    def row(self) -> dict:
        """epe, 1px, 3px, 5px, fl_all, n, pairs, ms_per_pair, occ_precision/recall/f1, per_pair."""
        row = summarize_errors(self.errors)
        row["pairs"] = len(self.times)
        row["ms_per_pair"] = float(np.mean(self.times)) if self.times else float("nan")
        if self.has_occlusion:
            scores = summarize_occlusion(self.occlusion)
            row.update(occ_precision=scores.precision, occ_recall=scores.recall, occ_f1=scores.f1)
        else:
            row.update(occ_precision=None, occ_recall=None, occ_f1=None)
        row["per_pair"] = self.per_pair
        return row


def summarize(results: dict, selected: dict) -> dict:
    """Unweighted mean over datasets of each metric; a dataset whose pairs all belong to an
    earlier dataset (KITTI-occ after KITTI-noc) is left out so that no pair counts twice."""
    seen: set = set()
    counted, left_out = [], []
    for dataset, loaders in selected.items():
        keys = {loader.key for loader in loaders}
        (left_out if keys and keys <= seen else counted).append(dataset)
        seen |= keys
    rows = {}
    for name in results["methods"]:
        row = {}
        for key in ("epe", "1px", "3px", "5px", "fl_all", *(f"epe_{b}" for b, _, _ in MOTION_BINS), "ms_per_pair",
                    "occ_precision", "occ_recall", "occ_f1"):
            values = [results["datasets"][d]["methods"][name].get(key) for d in counted]
            values = [v for v in values if v is not None and math.isfinite(v)]
            row[key] = float(np.mean(values)) if values else None
        row["pairs"] = sum(results["datasets"][d]["methods"][name]["pairs"] for d in counted)
        rows[name] = row
    return {"datasets": counted, "left_out": left_out, "methods": rows}


def _header(root, device: str, runners: dict, skipped: dict, out) -> dict:
    results: dict = {"root": str(root), "device": device, "methods": list(runners),
                     "labels": {name: method.label for name, method in runners.items()}, "skipped": skipped,
                     "farneback_params": dict(FARNEBACK_PARAMS), "datasets": {}}
    if "lfn_ros" in runners:
        info = runners["lfn_ros"].info
        results["lfn_ros"] = info
        results["device"] = info["device"]
        print(f"lfn_ros: {info['model']} on {info['device']}", file=out)
    return results


def evaluate(
    root,
    weights="default",
    device: str = "cpu",
    methods: Sequence[str] = METHODS,
    datasets: Optional[Sequence[str]] = None,
    max_pairs: Optional[int] = None,
    plot=None,
    json_out=None,
    progress: bool = True,
    finest_level: Optional[int] = None,
    warmup: bool = True,
    out=None,
    engine=None,
) -> dict:
    """Evaluate lfn_ros and its peers on every dataset under ``root``.

    Args:
        root: data folder (the layout of the team's evaluation data; see its MANIFEST).
        weights: lfn_ros checkpoint: a path, "default" (shipped) or None (untrained, warns).
        device: "cpu" or "cuda[:N]" for lfn_ros and RAFT-small.
        methods: names from METHODS, printed in this order. Unavailable ones (RAFT-small
            without torchvision or its weights) are skipped with a printed reason.
        datasets: names from :func:`discover` to run (None: all found).
        max_pairs: at most this many pairs per dataset (the first ones), None for all.
        plot: PNG file for EPE against time per pair (log x), or None.
        json_out: JSON file for the raw results, or None.
        progress: show a tqdm progress bar over pairs (stderr).
        finest_level: lfn_ros decoder's finest level (2 as published, 3 faster); None: the
            checkpoint's recommendation, else 2.
        warmup: one untimed call per method and image size before timing.
        out: text stream for the tables (default sys.stdout).
        engine: a FlowEngine to evaluate as lfn_ros instead of loading ``weights`` (for
            example one around the trainer's in-memory model).

    Returns:
        dict: root, device, methods (run), labels, skipped {method: reason}, lfn_ros (card,
        model, weights_sha256), farneback_params, datasets {name: {pairs, size, methods {method:
        metrics}}}, all {datasets, left_out, methods {method: metrics}}. Per-method metrics: epe,
        1px, 3px, 5px (fractions), fl_all (%), n (pixels), epe_s0-10 / epe_s10-40 / epe_s40+
        (px, over the pixels of each true-motion bin), ms_per_pair, pairs, occ_precision,
        occ_recall, occ_f1 (None without occlusion GT or prediction), per_pair [...].

    Raises:
        FileNotFoundError: no root. ValueError: unknown method or dataset, or nothing to run.
    """
    from tqdm import tqdm

    out = out or sys.stdout
    selected = select_datasets(root, datasets, max_pairs)
    runners, skipped = build_methods(methods, weights, device, finest_level, engine, out)
    results = _header(root, device, runners, skipped, out)
    run_pair = PairRunner(runners, selected, warmup)
    bar = tqdm(total=sum(len(v) for v in selected.values()), desc="evaluate", unit="pair", disable=not progress,
               file=sys.stderr, leave=False)
    try:
        for dataset, loaders in selected.items():
            results["datasets"][dataset] = _run_dataset(dataset, loaders, runners, run_pair, bar)
            bar.clear()
            entry = results["datasets"][dataset]
            print(format_table(f"\n== {dataset}: {len(loaders)} pair(s), {entry['size']} ==", entry["methods"],
                               results["labels"]), file=out, flush=True)
            bar.refresh()
    finally:
        bar.close()
    results["all"] = summarize(results, selected)
    _report(results, plot, json_out, out)
    return results


def _run_dataset(dataset: str, loaders, runners, run_pair, bar) -> dict:
    """Every method on every pair of one dataset: {pairs, size, methods {name: metrics}}."""
    scores = {name: DatasetScore() for name in runners}
    sizes = set()
    for loader in loaders:
        bar.set_postfix_str(f"{dataset} {loader.name}")
        sample = loader()
        sizes.add(sample.size)
        for name, (flow, occlusion, ms) in run_pair(loader, sample).items():
            scores[name].add(loader.name, sample, flow, occlusion, ms)
        bar.update(1)
    return {"pairs": len(loaders), "size": size_text(sizes), "methods": {name: s.row() for name, s in scores.items()}}


def _report(results: dict, plot, json_out, out) -> None:
    """The "all" table, then the plot and JSON files when asked for."""
    note = "mean over datasets, each counted once"
    if results["all"]["left_out"]:
        note += "; left out (same pairs as an earlier dataset): " + ", ".join(results["all"]["left_out"])
    print(format_table(f"\n== all: {note} ==", results["all"]["methods"], results["labels"]), file=out, flush=True)
    if plot:
        plot_results(results, plot, results["labels"])
        print(f"plot written to {plot}", file=out)
    if json_out:
        path = Path(json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(sanitize(results), indent=1))
        print(f"results written to {json_out}", file=out)
