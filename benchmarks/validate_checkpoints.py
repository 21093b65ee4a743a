#!/usr/bin/env python3
"""Synthetic validation EPE of checkpoints side by side (lfn_ros.train.validation: 48 pairs at
512x384, by displacement as a fraction of the width and by true motion in pixels; --data heavy,
round3 or scenes3d). What recipe decisions are made on.

    python benchmarks/validate_checkpoints.py runs/a/last.pt runs/b/last.pt [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lfn_ros.evaluate.metrics import MOTION_BINS  # noqa: E402
from lfn_ros.model.weights import load_model  # noqa: E402
from lfn_ros.train.validation import BUCKETS, VALIDATION_SETS, validate  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--data", default="heavy", choices=VALIDATION_SETS, help="validation set (docs/training.md)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "validation_checkpoints.json"))
    args = parser.parse_args(argv)
    names = [name for name, _, _ in BUCKETS + MOTION_BINS]  # fractions of the width, then pixels
    print(f"{'checkpoint':<44}{'steps':>7}{'EPE':>8}" + "".join(f"{n:>10}" for n in names))
    rows = {}
    for path in args.checkpoints:
        model, card = load_model(path)
        result = validate(model, precision=args.precision, data=args.data)
        rows[path] = {"steps": card.get("steps"), **result}
        print(f"{path[-44:]:<44}{card.get('steps', 0):>7}{result['epe']:8.2f}" + "".join(f"{result['epe_' + n]:10.2f}" for n in names),
              flush=True)
    Path(args.out).write_text(json.dumps({"data": args.data, "command": "python benchmarks/validate_checkpoints.py " + " ".join(argv or sys.argv[1:]),
                                          "rows": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
