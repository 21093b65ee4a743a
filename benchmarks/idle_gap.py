#!/usr/bin/env python3
"""Does an idle gap before a frame make the engine's step slower? (issue 16, ``stale_frame_age``)

    python benchmarks/idle_gap.py --cascade none --gaps 0,20,40 --reps 6

The node's ``stale_frame_age`` lets the inference thread wait for a fresher frame instead of
computing one that waited. The wait is only worth it if the step that follows is as fast as a
step right after the previous one. This times ``FlowEngine.process`` on the camera sequence at
320x240 (the node's defaults, in this process), each frame preceded by an idle gap of the given
length (sleeping, or with ``--spin`` busy-waiting on this thread); the gaps alternate in blocks
of 10 frames, ``--reps`` times, so a machine that drifts over minutes affects every gap alike.

Writes benchmarks/results/idle_gap_cpu.json and prints a table. Pause any training first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from node_latency import camera_frames  # noqa: E402


def idle(seconds: float, spin: bool) -> None:
    """Wait ``seconds`` asleep (the thread blocks, as on a condition variable) or spinning."""
    if not spin:
        time.sleep(seconds)
        return
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--cascade", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="cpu threads (0: the node's rule)")
    parser.add_argument("--gaps", default="0,20,40", help="idle gaps before each frame, ms")
    parser.add_argument("--reps", type=int, default=6, help="blocks of 10 frames per gap")
    parser.add_argument("--spin", action="store_true", help="busy-wait instead of sleeping")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "idle_gap_cpu.json")
    args = parser.parse_args(argv)

    import torch

    from lfn_ros.engine import FlowEngine
    from lfn_ros.nodes.parameters import BY_NAME, default_cpu_threads

    threads = args.threads or default_cpu_threads()
    torch.set_num_threads(threads)
    engine = FlowEngine(device="cpu", backend=args.backend, threads=threads, precision=BY_NAME["precision"].default,
                        occlusion=True, occlusion_method=BY_NAME["occlusion_method"].default,
                        refinement=BY_NAME["refinement"].default, cascade=args.cascade)
    frames = camera_frames(320, 240)[:10]
    gaps = [float(g) / 1000.0 for g in args.gaps.split(",")]
    steps = {gap: [] for gap in gaps}
    clock = 0
    for _ in range(args.reps):
        for gap in gaps:
            engine.reset()
            for i, rgb in enumerate(frames):
                idle(gap, args.spin)
                clock += 1
                start = time.perf_counter()
                engine.process(rgb, seconds=clock / 15.0)
                if i > 1:  # frame 0 starts the sequence; frame 1 is the first full step
                    steps[gap].append((time.perf_counter() - start) * 1000.0)
    base = float(np.median(steps[gaps[0]]))
    rows = []
    print(f"{engine.model_name}; idle {'spinning' if args.spin else 'asleep'}")
    print(f"{'gap ms':>7} {'step p50 ms':>12} {'mean ms':>8} {'vs first':>9} {'steps':>6}")
    for gap in gaps:
        p50 = float(np.median(steps[gap]))
        rows.append({"gap_ms": gap * 1000.0, "step_ms_p50": p50, "step_ms_mean": float(np.mean(steps[gap])),
                     "over_first_gap_ms": p50 - base, "steps": len(steps[gap])})
        print(f"{gap * 1000:7.0f} {p50:12.1f} {np.mean(steps[gap]):8.1f} {p50 - base:+9.1f} {len(steps[gap]):6d}")
    from speed import machine_description, write_results

    payload = {"machine": machine_description(torch.device("cpu")), "model": engine.model_name, "spin": args.spin,
               "rows": rows, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_results(args.out, payload, "idle_gap.py", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
