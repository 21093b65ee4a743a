#!/usr/bin/env python3
"""Collect the side-by-side recipe runs (runs/exp*/, not committed) into
benchmarks/results/recipe_runs.json: each run's last metrics row and its synthetic validation rows.

    python tools/collect_recipe_runs.py runs/exp1/* runs/exp2/* runs/exp3/*
"""

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(folders) -> int:
    runs = {}
    for folder in map(Path, folders):
        if not (folder / "metrics.csv").is_file():
            continue
        metrics = list(csv.DictReader(open(folder / "metrics.csv")))
        validation = list(csv.DictReader(open(folder / "validation.csv"))) if (folder / "validation.csv").is_file() else []
        card = json.loads((folder / "card.json").read_text()) if (folder / "card.json").is_file() else {}
        runs[str(folder)] = {"recipe": card.get("recipe"), "last_metrics": metrics[-1] if metrics else None,
                             "max_batch_epe": max(float(r["epe"]) for r in metrics) if metrics else None,
                             "validation": validation}
    out = ROOT / "benchmarks" / "results" / "recipe_runs.json"
    out.write_text(json.dumps({"command": "python tools/collect_recipe_runs.py " + " ".join(folders), "runs": runs}, indent=1))
    print(f"wrote {out} ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
