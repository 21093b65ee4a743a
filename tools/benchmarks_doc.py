#!/usr/bin/env python3
"""Write the tables of docs/benchmarks.md from the committed benchmark results, so every figure
there comes from a file named next to it.

    python tools/benchmarks_doc.py --write

Sources: benchmarks/results/speed_cpu.json (benchmarks/speed.py), node_latency_cpu.json
(benchmarks/node_latency.py) and node_load_cpu.json (benchmarks/node_load.py). The text
between <!-- generated:begin --> and <!-- generated:end --> is replaced.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from generated_sections import main as generated_main  # noqa: E402
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results"


def speed_tables(data: dict) -> list[str]:
    rows = data["rows"]
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    lines = [f"`{data['command']}` on {data['machine']['description']} (flags: {', '.join(data['machine']['cpu_flags'])}; "
             f"torch {data['machine']['torch']}, Python {data['machine']['python']}), median of {data['iters']} after "
             f"{data['warmup']} warm-up, {data['date']}; `benchmarks/results/speed_cpu.json`.", ""]
    peaks = data.get("matmul_peak_gflop_per_s") or {}
    if peaks:
        lines += ["Matmul peak of this machine in the same run (N=2048, GFLOP/s): "
                  + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) + ".", ""]
    for size in sizes:
        lines += [f"**{size}** (ms; GFLOP per pair = convolution and matmul work of both NetC passes and one NetE pass; "
                  "% of peak: GFLOP/s over the matmul peak of the path's library and precision, same run)", "",
                  "| path | level | pair ms | node step ms (check) | node step ms (head) | GFLOP | GFLOP/s (pair) | % of peak |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if r["size"] != size:
                continue
            if r.get("level") is None:
                lines.append(f"| {r['name']} | - | {r['pair_ms']:.1f} | - | - | - | - | - |")
            else:
                head = f"{r['node_head_ms']:.1f}" if r.get("node_head_ms") else "-"
                fraction = f"{100 * r['peak_fraction']:.0f} %" if r.get("peak_fraction") else "-"
                lines.append(f"| {r['name'].removeprefix('lfn ')} | {r['level']} | {r['pair_ms']:.1f} | {r['node_ms']:.1f} | "
                             f"{head} | {r['gflop']:.1f} | {r['gflop_per_s']:.0f} | {fraction} |")
        lines.append("")
    return lines


def latency_table(data: dict) -> list[str]:
    lines = [f"`{data['command']}` on {data['machine']}, {data['seconds']:g} s per configuration, {data['date']}; "
             "`benchmarks/results/node_latency_cpu.json`. Engine step: `FlowEngine.process` alone in the benchmark's "
             "process, same parameters, measured just before the node. Overhead = latency - model time, split into "
             "the node (waiting behind the previous frame, conversion, building messages) and transport.", "",
             "| camera | backend | cpu_threads | engine step ms (p50) | processed | dropped | latency p50 ms | p99 ms | "
             "node / engine | model ms (p50) | overhead ms (p50) | in the node | transport |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        engine = r.get("engine_step_ms", {}).get("p50")
        engine_cell = f"{engine:.1f}" if engine else "-"
        if "error" in r:
            lines.append(f"| {r['camera']} | {r['backend']} | {r['cpu_threads']} | {engine_cell} | {r['error']} | | | | | | | | |")
            continue
        ratio = f"{r['node_over_engine']:.2f}x" if r.get("node_over_engine") else "-"
        split = (f"{r['in_node_ms_p50']:.1f} | {r['transport_ms_p50']:.1f}" if r.get("in_node_ms_p50") is not None
                 else "- | -")
        lines.append(f"| {r['camera']} | {r['backend']} | {r['cpu_threads']} | {engine_cell} | "
                     f"{100 * r['processed_fraction']:.0f} % | {r['dropped']} | {r['latency_ms']['p50']:.0f} | "
                     f"{r['latency_ms']['p99']:.0f} | {ratio} | {r['compute_ms_p50']:.1f} | {r['overhead_ms_p50']:.1f} | {split} |")
    return lines + [""]


def load_table(data: dict) -> list[str]:
    """The node under load (benchmarks/node_load.py): a camera faster than inference, minutes."""
    camera = data["camera"]
    lines = [f"`python benchmarks/node_load.py --seconds {data['seconds']:g} --rate {camera['rate_hz']:g} --device "
             f"{data['device']}`: {data['model']}; `benchmarks/results/node_load_{'cpu' if data['device'] == 'cpu' else 'cuda'}.json` "
             "(and `.png`: memory and latency over time).", "",
             "| quantity | value |", "|---|---|",
             f"| camera | {camera['rate_hz']:g} Hz, {camera['width']}x{camera['height']} rgb8 |",
             f"| measured | {data['measured_seconds']:.0f} s |",
             f"| frames received by the node | {data['frames_received_by_node']} |",
             f"| frames processed | {data['frames_processed']} ({data['processed_rate_hz']:.2f} Hz) |",
             f"| frames dropped (latest-only) | {data['frames_dropped']} ({100 * data['drop_fraction']:.1f} %) |"]
    if "accounting_holds" in data:
        lines.append(f"| received = processed + dropped + first frames + bad messages | "
                     f"{data['frames_received_by_node']} = {data['frames_accounted']}: "
                     f"{'holds' if data['accounting_holds'] else 'does NOT hold'} |")
    lines += [f"| model time (compute) p50 / p99 | {data['compute_ms']['p50']:.0f} / {data['compute_ms']['p99']:.0f} ms |",
              "| latency (node: publish - stamp) p50 / p99 / max | {p50:.0f} / {p99:.0f} / {max:.0f} ms |".format(**data["latency_node_ms"]),
              "| latency (received by another process) p50 / p99 / max | {p50:.0f} / {p99:.0f} / {max:.0f} ms |".format(**data["latency_received_ms"]),
              "| node RSS first / last / max | {first:.0f} / {last:.0f} / {max:.0f} MiB |".format(**data["rss_mib"]),
              f"| RSS trend over the second half | {data['rss_mib']['slope_second_half_mib_per_min']:+.1f} MiB/min |",
              f"| exit status node / player | {data['node_exit_status']} / {data['player_exit_status']} |", ""]
    return lines


def compiled_table(data: dict) -> list[str]:
    """Eager against TorchInductor (benchmarks/compiled.py), one fresh process per path."""
    cache = "empty at the start: a cold compile" if data.get("inductor_cache_empty_at_start") else "in use: a warm compile"
    lines = [f"`{data['command']}` on {data['machine']['description']}, median of {data['iters']} after "
             f"{data['warmup']} warm-up, each path in a fresh process, {data['date']}; Inductor's cache {cache}; "
             "`benchmarks/results/compiled_cpu.json`. First two frames: what a node waits for its first flow at a new "
             "resolution (the compile).", "",
             "| path | size | level | first two frames (s) | node step ms | pair ms | node speed-up | pair speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    eager = {}
    for r in data["rows"]:
        key = (r["precision"], r["size"], r["level"])
        if r["backend"] == "torch":
            eager[key] = r
            speed = "| | |"
        else:
            base = eager.get(key)
            speed = (f"| {base['node_ms'] / r['node_ms']:.2f}x | {base['pair_ms'] / r['pair_ms']:.2f}x |" if base else "| - | - |")
        lines.append(f"| {r['backend']} {r['precision']} | {r['size']} | {r['level']} | {r['first_two_frames_s']:.1f} | "
                     f"{r['node_ms']:.1f} | {r['pair_ms']:.1f} {speed}")
    return lines + [""]


def generate() -> str:
    parts = []
    speed = RESULTS / "speed_cpu.json"
    if speed.is_file():
        parts += ["### LiteFlowNet per pair and per node step, and its peers", "", *speed_tables(json.loads(speed.read_text()))]
    latency = RESULTS / "node_latency_cpu.json"
    if latency.is_file():
        parts += ["### The node end to end (camera -> flow_node -> subscriber, separate processes)", "",
                  *latency_table(json.loads(latency.read_text()))]
    compiled = RESULTS / "compiled_cpu.json"
    if compiled.is_file():
        parts += ["### TorchInductor against eager PyTorch (`backend: torch-compiled`)", "",
                  *compiled_table(json.loads(compiled.read_text()))]
    load = RESULTS / "node_load_cpu.json"
    if load.is_file():
        parts += ["### The node under load (a camera faster than inference)", "", *load_table(json.loads(load.read_text()))]
    return "\n".join(parts)


def main(argv=None) -> int:
    return generated_main(DOC, generate, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
