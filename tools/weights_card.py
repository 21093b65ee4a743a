#!/usr/bin/env python3
"""Write the tables of lfn_ros/weights/README.md from committed files, so every figure of the
card comes from a file named next to it (issue 12).

    python tools/weights_card.py                     # prints the generated sections
    python tools/weights_card.py --write             # replaces them in lfn_ros/weights/README.md

Sources: the shipped checkpoint's own card (training runs, steps, pairs, hours, occlusion head),
benchmarks/results/evaluation_cpu.json (`lfn-ros evaluate ../shared/data --json ...`; it must
name the shipped file's sha256, or this refuses) and, when present, the comparison columns of
COMPARISONS: the same weights in one pass (``--cascade none``) and the network alone
(``--cascade none --refinement none``), same file, same machine, and round 2's weights through
the published network on the same data.
The generated text sits between the markers <!-- generated:begin --> and <!-- generated:end -->.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from generated_sections import main as generated_main  # noqa: E402
sys.path.insert(0, str(ROOT))

from lfn_ros.model.weights import file_sha256, read_checkpoint  # noqa: E402
from lfn_ros.resources import DEFAULT_WEIGHTS  # noqa: E402

CARD = ROOT / "lfn_ros" / "weights" / "README.md"
EVALUATION = ROOT / "benchmarks" / "results" / "evaluation_cpu.json"
#: Comparison columns: (name, evaluation JSON, what it is, whether it must have measured the
#: shipped file). Their lfn_ros rows only are read; the ratio to DIS-medium takes DIS-medium from
#: EVALUATION's run.
COMPARISONS = (("one pass", ROOT / "benchmarks" / "results" / "evaluation_onepass_cpu.json",
                "these weights with `--cascade none`, the default before the two-scale cascade", True),
               ("network alone", ROOT / "benchmarks" / "results" / "evaluation_unrefined_cpu.json",
                "these weights with `--cascade none --refinement none`", True),
               ("round 2", ROOT / "benchmarks" / "results" / "evaluation_round2_cpu.json", "the previous weights", False))
NAMES = {"Sintel-clean": "Sintel clean", "Sintel-final": "Sintel final", "FlyingChairs": "FlyingChairs",
         "Middlebury": "Middlebury", "KITTI2012-noc": "KITTI 2012 noc", "KITTI2012-occ": "KITTI 2012 occ",
         "KITTI2015-noc": "KITTI 2015 noc", "KITTI2015-occ": "KITTI 2015 occ"}
#: Sintel's speed bins, as lfn-ros evaluate reports them (lfn_ros.evaluate.metrics.MOTION_BINS).
BINS = ("s0-10", "s10-40", "s40+")
PEERS = ("DIS-ultrafast", "DIS-fast", "DIS-medium", "Farneback", "zero")


def fmt(value, spec=".2f") -> str:
    return "-" if value is None else format(value, spec)


def runs_table(card: dict) -> list[str]:
    lines = ["| run | started | steps | pairs | wall time | crops | level | lr, schedule | precision | hardware |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, run in enumerate(card.get("runs", []), 1):
        lr = f"{run.get('lr')}, {run.get('schedule', 'step')}"
        lines.append(f"| {i} | {run.get('started', '-')[:16]} | {run['steps']:,} | {run['pairs']:,} | "
                     f"{run['wall_time_s'] / 60:.0f} min | {run.get('size')} x{run.get('batch')} | {run.get('finest_level')} | "
                     f"{lr} | {run.get('precision')} | {run.get('hardware', '').replace('CPU: ', '')} |")
    lines.append(f"| total | | {card['steps']:,} | {card['pairs_seen']:,} | {card['wall_time_s'] / 3600:.1f} h | | | | | |")
    return lines


def accuracy_table(results: dict, comparisons: list) -> list[str]:
    header = "| dataset (pairs) | lfn_ros |" + "".join(f" {name} |" for name, _ in comparisons) + "".join(f" {p} |" for p in PEERS)
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    rows = list(results["datasets"].items()) + [("all", {"pairs": results["all"]["methods"]["lfn_ros"]["pairs"],
                                                          "methods": results["all"]["methods"]})]
    for name, entry in rows:
        label = NAMES.get(name, name) + f" ({entry['pairs']})" if name != "all" else \
            f"**mean over datasets** ({left_out_text(results)})"
        methods = entry["methods"]
        cells = [fmt(methods["lfn_ros"]["epe"])]
        for _, other in comparisons:
            prev = other["datasets"].get(name, {}).get("methods", {}) if name != "all" else other["all"]["methods"]
            cells.append(fmt(prev.get("lfn_ros", {}).get("epe")))
        cells += [fmt(methods.get(p, {}).get("epe")) for p in PEERS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def left_out_text(results: dict) -> str:
    left = [NAMES.get(d, d) for d in results["all"].get("left_out", [])]
    return (", ".join(left) + " left out: the same pairs as noc") if left else "every dataset"


def ratio_to(results: dict, peer: str = "DIS-medium", ours_from: dict | None = None) -> tuple[float, int]:
    """Geometric mean over pairs of lfn_ros's EPE / ``peer``'s EPE (the measure issues 8, 11 and
    15 state their targets in), and the number of pairs. Datasets whose pairs an earlier dataset
    holds (KITTI occ after noc) are left out, as in evaluate's "all" row. ``ours_from``: take
    lfn_ros's EPEs from these results instead (a comparison run without peers)."""
    logs = []
    for name, entry in results["datasets"].items():
        if name in results["all"].get("left_out", []) or peer not in entry["methods"]:
            continue
        source = (ours_from or results)["datasets"].get(name, {}).get("methods", {}).get("lfn_ros")
        if source is None:
            continue
        ours = {p["name"]: p["epe"] for p in source["per_pair"]}
        for pair in entry["methods"][peer]["per_pair"]:
            if pair["name"] in ours and pair["epe"] > 0:
                logs.append(math.log(ours[pair["name"]] / pair["epe"]))
    return math.exp(sum(logs) / len(logs)), len(logs)


def motion_bin_table(results: dict, comparisons: list = ()) -> list[str]:
    """EPE per true-motion bin (mean over datasets, as evaluate's "all" row) of lfn_ros, the
    comparison columns and every peer, and per dataset for lfn_ros and DIS-medium."""
    rows = [("lfn_ros", results["all"]["methods"].get("lfn_ros"))]
    rows += [(f"lfn_ros, {name}", other["all"]["methods"].get("lfn_ros")) for name, other in comparisons]
    rows += [(results["labels"].get(p, p), results["all"]["methods"].get(p)) for p in PEERS]
    lines = ["| method | " + " | ".join(BINS) + " | all pixels |", "|---" * (len(BINS) + 2) + "|"]
    for label, row in rows:
        if row:
            lines.append(f"| {label} | " + " | ".join(fmt(row.get(f"epe_{b}")) for b in BINS) + f" | {fmt(row.get('epe'))} |")
    lines += ["", "| dataset | " + " | ".join(f"{b} lfn_ros / DIS-medium" for b in BINS) + " |", "|---" * (len(BINS) + 1) + "|"]
    for name, entry in results["datasets"].items():
        if name in results["all"].get("left_out", []):
            continue
        ours, dis = entry["methods"]["lfn_ros"], entry["methods"].get("DIS-medium", {})
        lines.append(f"| {NAMES.get(name, name)} | " + " | ".join(
            f"{fmt(ours.get(f'epe_{b}'))} / {fmt(dis.get(f'epe_{b}'))}" for b in BINS) + " |")
    return lines


def occlusion_table(results: dict) -> list[str]:
    lines = ["| dataset | precision | recall | F1 |", "|---|---|---|---|"]
    for name, entry in results["datasets"].items():
        row = entry["methods"]["lfn_ros"]
        if row.get("occ_f1") is not None:
            lines.append(f"| {NAMES.get(name, name)} | {fmt(row['occ_precision'])} | {fmt(row['occ_recall'])} | {fmt(row['occ_f1'])} |")
    return lines


def generate() -> str:
    payload = read_checkpoint(DEFAULT_WEIGHTS)
    card = payload["card"]
    results = json.loads(EVALUATION.read_text())
    sha = file_sha256(DEFAULT_WEIGHTS)
    if results.get("lfn_ros", {}).get("weights_sha256") != sha:
        raise SystemExit(f"{EVALUATION} did not measure the shipped file (sha256 {sha[:12]}...): rerun lfn-ros evaluate")
    comparisons = []
    for name, path, _, same_file in COMPARISONS:
        if not path.is_file():
            continue
        other = json.loads(path.read_text())
        if same_file and other.get("lfn_ros", {}).get("weights_sha256") != sha:
            raise SystemExit(f"{path} did not measure the shipped file: rerun lfn-ros evaluate (see the card's commands)")
        comparisons.append((name, other))
    sources = "; ".join(f"{name}: `benchmarks/results/{path.name}`, {what}" for name, path, what, _ in COMPARISONS if path.is_file())
    parts = [f"Generated by `python tools/weights_card.py --write` from the checkpoint's card and "
             f"`benchmarks/results/evaluation_cpu.json` (sha256 of the measured file: `{sha[:16]}...`, the shipped one).", "",
             "### Training runs (from the card)", "", *runs_table(card), "",
             f"### Accuracy: EPE in pixels, `{results['lfn_ros']['model']}`", "",
             "`lfn-ros evaluate ../shared/data --json benchmarks/results/evaluation_cpu.json --plot docs/images/evaluation.png`, "
             "all pairs, every method in the same run on the same machine"
             + (f" ({sources})" if sources else "") + ".", "",
             *accuracy_table(results, comparisons), ""]
    ratio, pairs = ratio_to(results)
    line = f"EPE ratio to DIS-medium, geometric mean over {pairs} pairs: **{ratio:.3f}**"
    if comparisons:
        line += " (" + ", ".join(f"{name}: {ratio_to(results, ours_from=other)[0]:.3f}" for name, other in comparisons) + ")"
    parts += [line + ". Targets (issue 15): 0.9 or less here; below 1.0 on the team's held-out pairs (not here).", ""]
    if all(f"epe_{b}" in results["all"]["methods"]["lfn_ros"] for b in BINS):
        parts += ["### By true motion: EPE over the pixels whose ground-truth motion is 0-10, 10-40 or 40+ px (Sintel's bins)",
                  "", *motion_bin_table(results, comparisons), ""]
    occlusion = occlusion_table(results)
    if len(occlusion) > 2:
        method = card.get("occlusion", {})
        parts += [f"### Occlusion (the engine's default method for these weights: "
                  f"{'the occlusion head' if payload.get('occlusion_head') else 'the forward-backward check'})", "",
                  *occlusion, ""]
        if method:
            parts += [f"Synthetic validation (exact masks): {json.dumps(method, indent=None)[:600]}", ""]
    return "\n".join(parts)


def main(argv=None) -> int:
    return generated_main(CARD, generate, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
