#!/usr/bin/env python3
"""Write the results table of docs/odometry.md from benchmarks/results/odometry_cpu.json
(benchmarks/odometry.py), so every figure there comes from the committed result file.

    python tools/odometry_doc.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from generated_sections import main as generated_main  # noqa: E402
DOC = ROOT / "docs" / "odometry.md"
RESULT = ROOT / "benchmarks" / "results" / "odometry_cpu.json"


def cell(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def generate() -> str:
    data = json.loads(RESULT.read_text())
    frames = next(iter(data["sequences"].values()))["frames"]
    lines = [f"`{data['command']}`, {data['date']}, lfn_ros as `{data['engine']}` (weights sha256 "
             f"`{(data.get('weights_sha256') or 'none')[:16]}...`); {frames} frames per sequence. Errors in degrees per "
             "frame, median / 90th percentile; 'none': frames without an estimate.", "",
             "| sequence | flow | rotation median | rotation p90 | direction median | direction p90 | none |",
             "|---|---|---|---|---|---|---|"]
    for name, sequence in data["sequences"].items():
        for source, row in sequence["sources"].items():
            rot, direction = row["rotation_deg"], row["direction_deg"]
            lines.append(f"| {name} | {source} | {cell(rot['median'], 3)} | {cell(rot['p90'], 3)} | "
                         f"{cell(direction['median'], 2)} | {cell(direction['p90'], 2)} | {row['frames_without_estimate']} |")
    for source, row in data["all"].items():
        lines.append(f"| **all frames** | **{source}** | {row['rotation_deg_median']:.3f} | {row['rotation_deg_p90']:.3f} | "
                     f"{row['direction_deg_median']:.2f} | {row['direction_deg_p90']:.2f} | {row['frames_without_estimate']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    return generated_main(DOC, generate, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
