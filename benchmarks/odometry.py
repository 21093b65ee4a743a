#!/usr/bin/env python3
"""Visual odometry fed with lfn_ros's flow, with OpenCV DIS-medium's, and with the exact flow (the
ceiling), on rendered 3D sequences with known camera motion (issue 19).

    python benchmarks/odometry.py                # 4 sequences x 12 frames at 320x240
    python benchmarks/odometry.py --frames 6     # quicker

Sequences (lfn_ros.data.scenes3d): a street driven forward at 1 m per frame, a street turn, a
hand-held walk through a room, and a drone yawing 4 degrees per frame in the room. Each has an
independently moving box. The estimator is lfn_ros.odometry.estimate_motion (essential matrix
from non-occluded grid correspondences, stride 8): lfn_ros's flow with its occlusion mask; DIS
with no mask (RANSAC rejects its outliers); the exact flow with the exact mask.

Errors per frame: rotation (degrees, the angle of R_est R_true^T) and translation direction
(degrees between the unit vectors); median and 90th percentile over all frames with an
estimate, and the frames without one. Writes benchmarks/results/odometry_cpu.json and
docs/images/odometry.png (top-down trajectories, each step scaled to the true step length,
since monocular flow has no scale).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lfn_ros.data.scenes3d import render_sequence  # noqa: E402
from lfn_ros.odometry import direction_error_deg, estimate_motion, rotation_error_deg  # noqa: E402

SEQUENCES = (("street", "forward"), ("street", "turn"), ("room", "handheld"), ("room", "drone_yaw"))
SOURCES = ("exact", "lfn_ros", "DIS-medium")


def flows_of(source: str, sequence: dict, engine=None, dis=None) -> list:
    """[(flow (H, W, 2), occlusion (H, W) or None)] of consecutive frames, from ``source``."""
    import cv2

    if source == "exact":
        return [(p["flow"], p["occlusion"]) for p in sequence["pairs"]]
    frames = sequence["frames"]
    if source == "lfn_ros":
        engine.reset()
        results = [engine.process(frame, seconds=float(i)) for i, frame in enumerate(frames)]
        return [(r.flow, r.occlusion) for r in results[1:]]
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    return [(dis.calc(a, b, None), None) for a, b in zip(grey, grey[1:])]


def trajectory_xz(steps: list) -> np.ndarray:
    """Camera positions (x, z) in the first camera's frame from per-frame (R_21, t_21) steps."""
    pose_R, pose_t, positions = np.eye(3), np.zeros(3), [np.zeros(3)]
    for R, t in steps:  # X2 = R X1 + t  =>  camera 2 in camera-1 coordinates: -R^T t
        pose_t = pose_t + pose_R @ (-R.T @ t)
        pose_R = pose_R @ R.T
        positions.append(pose_t.copy())
    return np.array(positions)[:, [0, 2]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "odometry_cpu.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "images" / "odometry.png")
    args = parser.parse_args(argv)
    import cv2

    from lfn_ros.engine import FlowEngine
    from lfn_ros.evaluate.methods import DIS_PRESETS

    engine = FlowEngine(device="cpu")
    dis = cv2.DISOpticalFlow_create(getattr(cv2, DIS_PRESETS["DIS-medium"]))
    results, tracks = {}, {}
    print(f"{'sequence':<20}{'source':<12}{'rot med':>9}{'rot p90':>9}{'dir med':>9}{'dir p90':>9}{'none':>6}", flush=True)
    for scene, motion in SEQUENCES:
        name = f"{scene}/{motion}"
        t0 = time.perf_counter()
        sequence = render_sequence(scene, motion, args.frames, seed=3)
        render_s = time.perf_counter() - t0
        K = sequence["camera"].K
        truth = [(p["R_21"], p["t_21"]) for p in sequence["pairs"]]
        results[name] = {"frames": args.frames, "render_s_per_pair": render_s / (args.frames - 1), "sources": {}}
        tracks[name] = {"truth": trajectory_xz(truth)}
        for source in SOURCES:
            rot, direction, none, steps = [], [], 0, []
            for (flow, occlusion), (R_true, t_true) in zip(flows_of(source, sequence, engine, dis), truth):
                estimate = estimate_motion(flow, occlusion, K)
                if estimate is None:
                    none += 1
                    steps.append((np.eye(3), np.zeros(3)))
                    continue
                rot.append(rotation_error_deg(estimate.R, R_true))
                direction.append(direction_error_deg(estimate.t, t_true))
                steps.append((estimate.R, estimate.t * np.linalg.norm(t_true)))  # true step length, for the plot
            row = {"rotation_deg": {"median": float(np.median(rot)) if rot else None, "p90": float(np.percentile(rot, 90)) if rot else None},
                   "direction_deg": {"median": float(np.median(direction)) if direction else None,
                                     "p90": float(np.percentile(direction, 90)) if direction else None},
                   "frames_without_estimate": none, "per_frame_rotation_deg": rot, "per_frame_direction_deg": direction}
            results[name]["sources"][source] = row
            tracks[name][source] = trajectory_xz(steps)
            fmt = lambda v: f"{v:9.3f}" if v is not None else f"{'-':>9}"  # noqa: E731
            print(f"{name:<20}{source:<12}{fmt(row['rotation_deg']['median'])}{fmt(row['rotation_deg']['p90'])}"
                  f"{fmt(row['direction_deg']['median'])}{fmt(row['direction_deg']['p90'])}{none:>6}", flush=True)
    summary = {}
    for source in SOURCES:
        rot = [e for r in results.values() for e in r["sources"][source]["per_frame_rotation_deg"]]
        direction = [e for r in results.values() for e in r["sources"][source]["per_frame_direction_deg"]]
        summary[source] = {"rotation_deg_median": float(np.median(rot)), "rotation_deg_p90": float(np.percentile(rot, 90)),
                           "direction_deg_median": float(np.median(direction)), "direction_deg_p90": float(np.percentile(direction, 90)),
                           "frames_without_estimate": sum(r["sources"][source]["frames_without_estimate"] for r in results.values())}
    print("all frames: " + "; ".join(f"{s}: rotation {v['rotation_deg_median']:.3f} / {v['rotation_deg_p90']:.3f} deg, "
                                      f"direction {v['direction_deg_median']:.2f} / {v['direction_deg_p90']:.2f} deg"
                                      for s, v in summary.items()))
    payload = {"sequences": results, "all": summary, "engine": engine.model_name, "weights_sha256": engine.card.get("sha256"),
               "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "command": "python benchmarks/odometry.py" + (f" {' '.join(argv)}" if argv else "")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1))
    plot(tracks, args.plot)
    print(f"wrote {args.out} and {args.plot}")
    return 0


def plot(tracks: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tracks), figsize=(4 * len(tracks), 4))
    styles = {"truth": ("black", "-", 2.5), "exact": ("tab:green", "--", 1.5), "lfn_ros": ("tab:blue", "-", 1.5),
              "DIS-medium": ("tab:orange", "-", 1.2)}
    for ax, (name, series) in zip(np.atleast_1d(axes), tracks.items()):
        for source, xz in series.items():
            colour, style, width = styles[source]
            ax.plot(xz[:, 0], xz[:, 1], style, color=colour, lw=width, label=source, marker="." if source != "truth" else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("x (m)")
        ax.set_ylabel("z (m, forward)")
        ax.axis("equal")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle("Top-down camera trajectories (each step scaled to the true length)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
