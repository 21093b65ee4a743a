"""The odometry estimator (issue 19): on exact flow of rendered scenes it recovers the rotation to
under 0.05 degrees per frame; a degenerate frame gives no estimate rather than a wrong one."""

import numpy as np
import pytest

from lfn_ros.data.scenes3d import Camera, render_sequence
from lfn_ros.odometry import FlowOdometry, direction_error_deg, estimate_motion, rotation_error_deg


@pytest.fixture(scope="module")
def sequences():
    return {name: render_sequence(*name, frames=4, seed=2) for name in (("street", "turn"), ("room", "handheld"))}


def test_exact_flow_gives_the_true_motion(sequences):
    for name, sequence in sequences.items():
        K = sequence["camera"].K
        for pair in sequence["pairs"]:
            estimate = estimate_motion(pair["flow"], pair["occlusion"], K)
            assert estimate is not None, name
            assert rotation_error_deg(estimate.R, pair["R_21"]) < 0.05, name
            assert direction_error_deg(estimate.t, pair["t_21"]) < 1.0, name
            assert estimate.inlier_ratio > 0.9


def test_degenerate_frames_give_nothing():
    K = Camera().K
    height, width = 240, 320
    still = np.zeros((height, width, 2), np.float32)
    assert estimate_motion(still, None, K) is None  # no motion: no parallax
    # A pure rotation (every point moves by the infinite homography): the translation is unobservable.
    from lfn_ros.data.scenes3d import rotation
    H = K @ rotation(0.03) @ np.linalg.inv(K)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    p = np.stack([xs, ys, np.ones_like(xs)], -1) @ H.T
    rotated = np.stack([p[..., 0] / p[..., 2] - xs, p[..., 1] / p[..., 2] - ys], -1).astype(np.float32)
    assert estimate_motion(rotated, None, K) is None
    noise = np.random.default_rng(0).normal(0, 30, (height, width, 2)).astype(np.float32)
    assert estimate_motion(noise, None, K) is None  # no consistent motion
    everything_occluded = np.ones((height, width), bool)
    assert estimate_motion(still + 3, everything_occluded, K) is None


def test_flow_odometry_accumulates_and_says_why_it_skips(sequences):
    sequence = sequences[("street", "turn")]
    camera = sequence["camera"]
    odometry = FlowOdometry()
    first = sequence["pairs"][0]
    assert "camera_info" in odometry.step(0.1, 0.0, first["flow"], first["occlusion"]).reason
    odometry.set_camera(camera.K, camera.width, camera.height)
    assert "camera_info says" in odometry.step(0.1, 0.0, first["flow"][:100], first["occlusion"][:100]).reason
    steps = [odometry.step(0.1 * (i + 1), 0.1 * i, p["flow"], p["occlusion"]) for i, p in enumerate(sequence["pairs"])]
    assert all(s.estimate is not None for s in steps)
    # 3 degrees of yaw per frame at 10 Hz: |angular velocity| = 0.52 rad/s.
    assert np.linalg.norm(steps[0].angular_velocity) == pytest.approx(np.radians(3.0) / 0.1, rel=0.02)
    assert odometry.counts == {"frames": 5, "estimated": 3, "no_camera_info": 1, "size_mismatch": 1, "degenerate": 0}
    assert np.linalg.norm(steps[-1].position) == pytest.approx(3.0, abs=0.05)  # three unit steps, nearly straight
