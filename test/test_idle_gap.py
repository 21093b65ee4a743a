"""benchmarks/idle_gap.py runs and writes its table (tiny: two gaps, one block each)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_idle_gap_benchmark_runs_and_writes_its_rows(tmp_path):
    spec = importlib.util.spec_from_file_location("idle_gap", ROOT / "benchmarks" / "idle_gap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "idle.json"
    assert module.main(["--backend", "torch", "--cascade", "none", "--gaps", "0,5", "--reps", "1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["gap_ms"] for r in rows] == [0.0, 5.0] and all(r["steps"] == 8 and r["step_ms_p50"] > 0 for r in rows)
    assert rows[0]["over_first_gap_ms"] == 0.0
