"""benchmarks/gpu_suite.py --dry-run: every step of the GPU suite at tiny sizes on the CPU, so the
one command a lent GPU runs cannot rot (issue 16 item 4)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_suite_dry_run_passes_and_packs_what_comes_back(tmp_path):
    out = tmp_path / "suite"
    result = subprocess.run([sys.executable, "benchmarks/gpu_suite.py", "--out", str(out), "--dry-run"], cwd=REPO,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr + (out / "logs.txt").read_text()
    suite = json.loads((out / "suite.json").read_text())
    assert suite["dry_run"] is True and suite["environment"]["cuda_available"] in (True, False)
    statuses = {name: step["status"] for name, step in suite["steps"].items()}
    assert statuses["environment"] == statuses["tests"] == statuses["speed"] == statuses["train"] == "passed", statuses
    assert statuses["node_latency"] in ("passed", "skipped")
    files = sorted(p.name for p in out.iterdir())
    # What the device tool brings back: at most 8 files, none over 16 MB, no folders.
    assert len(files) <= 8 and all((out / f).is_file() and (out / f).stat().st_size < 16 * 2**20 for f in files), files
    assert {"suite.json", "logs.txt", "train_weights.pt", "train_metrics.csv", "speed_cpu.json"} <= set(files)
    speed = json.loads((out / "speed_cpu.json").read_text())
    assert any(row["name"].startswith("lfn") for row in speed["rows"])
