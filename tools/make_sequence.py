#!/usr/bin/env python3
"""Regenerate the demo sequence that ships in lfn_ros/data/sequence/.

The frames are rendered, not photographed here: a background picture seen by a camera that pans,
rotates slightly and zooms in, with a foreground disc (cut from a photograph of a cat) sliding
across it in another direction. Both pictures come from scikit-image's bundled sample data
and are CC0:

- background: ``skimage.data.coffee()`` (photograph by Rachel Michetti, CC0)
- foreground: ``skimage.data.chelsea()`` (photograph by Stefan van der Walt, CC0)

The motion is an exact affine map per layer (see ``background_transform`` and ``disc_centre``),
so the true flow between frames is known; ``--flow`` also writes it (``.flo``) for checks.

Usage::

    .venv/bin/python tools/make_sequence.py               # writes lfn_ros/data/sequence/*.jpg
    .venv/bin/python tools/make_sequence.py --out /tmp/seq --frames 12 --flow
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "lfn_ros" / "data" / "sequence"

WIDTH, HEIGHT = 320, 240
# Camera motion per frame: pan (pixels of the output), rotation (degrees), zoom factor.
PAN_PER_FRAME = (3.0, 1.0)
ROTATION_PER_FRAME = 0.4
ZOOM_PER_FRAME = 1.01
# Foreground disc: radius (px), start centre and velocity (px / frame) in output pixels.
DISC_RADIUS = 42
DISC_START = (90.0, 150.0)
DISC_VELOCITY = (7.0, -3.0)


def background_transform(index: int) -> np.ndarray:
    """2x3 affine matrix mapping background-picture pixels to frame ``index``'s pixels."""
    source_centre = (300.0, 200.0)  # centre of coffee() (600x400)
    angle = ROTATION_PER_FRAME * index
    zoom = 0.62 * ZOOM_PER_FRAME ** index  # 0.62: the 600x400 picture covers 320x240 with margin
    matrix = cv2.getRotationMatrix2D(source_centre, angle, zoom)
    # Move the picture centre to the frame centre, then pan.
    matrix[0, 2] += WIDTH / 2 - source_centre[0] + PAN_PER_FRAME[0] * index
    matrix[1, 2] += HEIGHT / 2 - source_centre[1] + PAN_PER_FRAME[1] * index
    return matrix


def disc_centre(index: int) -> tuple[float, float]:
    return (DISC_START[0] + DISC_VELOCITY[0] * index, DISC_START[1] + DISC_VELOCITY[1] * index)


def _foreground_patch() -> np.ndarray:
    from skimage import data

    cat = data.chelsea()  # (300, 451, 3) RGB
    face = cat[40:220, 110:290]  # 180x180 around the left eye
    size = 2 * DISC_RADIUS + 1
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)


def render(index: int, background: np.ndarray, patch: np.ndarray) -> np.ndarray:
    """Frame ``index`` as (HEIGHT, WIDTH, 3) uint8 RGB."""
    frame = cv2.warpAffine(background, background_transform(index), (WIDTH, HEIGHT),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    cx, cy = disc_centre(index)
    # Sub-pixel placement of the disc: translate the patch by its fractional offset.
    shift = np.float32([[1, 0, cx - DISC_RADIUS], [0, 1, cy - DISC_RADIUS]])
    layer = cv2.warpAffine(patch, shift, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    distance = np.hypot(xs - cx, ys - cy)
    alpha = np.clip(DISC_RADIUS - distance + 0.5, 0.0, 1.0)[:, :, None]  # anti-aliased edge
    out = frame.astype(np.float32) * (1 - alpha) + layer.astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def true_flow(index: int) -> np.ndarray:
    """Exact flow from frame ``index`` to ``index + 1``: (HEIGHT, WIDTH, 2) float32 pixels."""
    a = np.vstack([background_transform(index), [0, 0, 1]])
    b = np.vstack([background_transform(index + 1), [0, 0, 1]])
    step = b @ np.linalg.inv(a)  # frame index -> frame index + 1
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    u = step[0, 0] * xs + step[0, 1] * ys + step[0, 2] - xs
    v = step[1, 0] * xs + step[1, 1] * ys + step[1, 2] - ys
    cx, cy = disc_centre(index)
    inside = np.hypot(xs - cx, ys - cy) <= DISC_RADIUS
    u[inside], v[inside] = DISC_VELOCITY
    return np.stack([u, v], axis=2).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=8, help="number of frames (default: %(default)s)")
    parser.add_argument("--flow", action="store_true", help="also write the true flow as flow_NNNN.flo")
    args = parser.parse_args(argv)
    from skimage import data

    background = np.ascontiguousarray(data.coffee())  # (400, 600, 3) RGB
    patch = _foreground_patch()
    args.out.mkdir(parents=True, exist_ok=True)
    for index in range(args.frames):
        rgb = render(index, background, patch)
        # JPEG at quality 95: about 36 KB a frame (a lossless PNG of this photo is 143 KB).
        path = args.out / f"frame_{index:04d}.jpg"
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            print(f"cannot encode {path}", file=sys.stderr)
            return 1
        path.write_bytes(encoded.tobytes())
        print(f"{path} ({len(encoded) // 1024} KB)")
        if args.flow and index + 1 < args.frames:
            sys.path.insert(0, str(REPO))
            from lfn_ros.io import write_flo

            write_flo(args.out / f"flow_{index:04d}.flo", true_flow(index))
    return 0


if __name__ == "__main__":
    sys.exit(main())
