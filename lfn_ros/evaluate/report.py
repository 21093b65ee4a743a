"""Evaluation results for people and files: text tables, the EPE-vs-time plot, JSON-safe values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict

import numpy as np

from .methods import METHODS


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sanitize(obj):
    """JSON-safe copy: NaN/inf -> null, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return _finite_or_none(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _fmt(value, spec: str, width: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-".rjust(width)
    return format(value, spec).rjust(width)


_COLUMNS = (("EPE", "epe", 1.0, ".3f", 8), ("1px%", "1px", 100.0, ".1f", 7), ("3px%", "3px", 100.0, ".1f", 7),
            ("5px%", "5px", 100.0, ".1f", 7), ("Fl-all%", "fl_all", 1.0, ".2f", 8), ("s0-10", "epe_s0-10", 1.0, ".3f", 8),
            ("s10-40", "epe_s10-40", 1.0, ".2f", 8), ("s40+", "epe_s40+", 1.0, ".2f", 8), ("occ F1", "occ_f1", 1.0, ".3f", 7),
            ("ms/pair", "ms_per_pair", 1.0, ".1f", 9))


def format_table(title: str, rows: Dict[str, dict], labels: Dict[str, str]) -> str:
    """A plain-text table: one row per method (label), the columns of _COLUMNS."""
    name_width = max([len("method")] + [len(labels.get(m, m)) for m in rows]) + 2
    lines = [title, "method".ljust(name_width) + "".join(h.rjust(w) for h, _, _, _, w in _COLUMNS)]
    lines.append("-" * len(lines[1]))
    for method, row in rows.items():
        cells = []
        for _, key, scale, spec, width in _COLUMNS:
            value = row.get(key)
            if isinstance(value, (int, float)) and value is not None and math.isfinite(value):
                value = value * scale
            cells.append(_fmt(value, spec, width))
        lines.append(labels.get(method, method).ljust(name_width) + "".join(cells))
    return "\n".join(lines)


def size_text(sizes: set) -> str:
    """'WxH' of the one size of a dataset, else 'various sizes'."""
    if len(sizes) == 1:
        (h, w), = sizes
        return f"{w}x{h}"
    return "various sizes"


def plot_results(results: dict, path, labels: Dict[str, str]) -> None:
    """PNG of EPE against time per pair (log x), one colour per method, one marker per dataset."""
    # The object-oriented API (no pyplot): no GUI backend is touched, nothing global changes.
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    markers = "osD^vP*Xh<>"
    colours = matplotlib.colormaps["tab10"]
    methods = results["methods"]
    datasets = list(results["datasets"])
    fig = Figure(figsize=(8.5, 5.5))
    ax = fig.subplots()
    for d, dataset in enumerate(datasets):
        rows = results["datasets"][dataset]["methods"]
        for method in methods:
            m = METHODS.index(method)  # a method keeps its colour whichever methods run
            row = rows.get(method)
            if not row or row.get("epe") is None or not math.isfinite(row["epe"]):
                continue
            ms = max(row["ms_per_pair"], 1e-3)
            ax.scatter(ms, row["epe"], marker=markers[d % len(markers)], color=colours(m % 10), s=55,
                       edgecolors="black", linewidths=0.5, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("time per pair (ms, wall clock, log scale)")
    ax.set_ylabel("EPE (px)")
    ax.set_title(f"Accuracy vs time per pair ({results.get('device', '?')})")
    ax.grid(True, which="both", alpha=0.3)
    method_handles = [Line2D([], [], marker="o", linestyle="", color=colours(METHODS.index(name) % 10),
                             label=labels.get(name, name)) for name in methods]
    dataset_handles = [Line2D([], [], marker=markers[d % len(markers)], linestyle="", color="grey", label=name)
                       for d, name in enumerate(datasets)]
    first = ax.legend(handles=method_handles, title="method", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.add_artist(first)
    ax.legend(handles=dataset_handles, title="dataset", loc="lower left", bbox_to_anchor=(1.01, 0.0), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
