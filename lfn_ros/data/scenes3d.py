"""Rigid 3D scenes seen by a moving pinhole camera, with exact flow, occlusion, depth and poses
(issue 19): what a robot's camera sees, and where the 2D layered scenes of lfn_ros.data.synthetic
fall short (expansion when driving forward, large near-field motion, parallax between depths).

A scene is a set of textured rectangles (``Rect``: ground, walls, box faces, a far enclosure, so
that every ray hits something); a box may move by its own rigid motion. The camera follows a
trajectory of camera-to-world poses. Conventions (OpenCV): camera x right, y down, z forward;
intrinsics K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]; a pose (R, t) maps camera to world
coordinates, X_w = R X_c + t. Lengths in metres, flow in pixels (frame 1 -> frame 2, channel 0 =
x), depth = camera z in metres.

Exactness: every pixel's ray is intersected with every rectangle in closed form; the nearest hit
gives the 3D point, its texture and depth. The flow is that point, moved with its rectangle (static,
or the box's motion), projected into the second camera; it is occluded where it leaves the frame,
lands behind the second frame's depth there, or lies behind the camera. Textures are the bundled
photographs (lfn_ros.data.textures), tiled over each rectangle at a random texel size, sampled
bilinearly at the exact surface point (so frame 2 is the same surface seen from elsewhere).

    python -m lfn_ros.data.scenes3d OUT_DIR [street|room] [forward|turn|handheld|drone_yaw] [FRAMES]

writes a rendered sequence: frames, ``camera_info.yaml``, ``poses.json`` and the exact flows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .textures import load_photo_bank

SCENES = ("street", "room")
TRAJECTORIES = ("forward", "turn", "handheld", "drone_yaw")


@dataclass
class Camera:
    """Pinhole intrinsics in pixels and the image size."""

    width: int = 320
    height: int = 240
    fx: float = 250.0
    fy: float = 250.0
    cx: float = 159.5
    cy: float = 119.5

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass
class Rect:
    """A textured rectangle p0 + a u + b v, a, b in [0, 1] (metres); ``owner`` 0 = static, else
    the index of the moving object it belongs to; ``texture`` an index into the bank; ``texel``
    metres per texture tile."""

    p0: np.ndarray
    u: np.ndarray
    v: np.ndarray
    texture: int = 0
    texel: float = 1.0
    owner: int = 0


@dataclass
class Scene:
    rects: list = field(default_factory=list)
    #: Per moving object (owner 1, 2, ...): its rigid motion per frame in world coordinates,
    #: (R (3, 3), t (3,)) applied about the world origin: X' = R X + t.
    motions: dict = field(default_factory=dict)


def rotation(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Camera-frame rotation from yaw (about y, down), pitch (about x), roll (about z), radians."""
    cy, sy, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def box(centre, size, texture: int, texel: float, owner: int = 0) -> list:
    """The five visible faces (no bottom) of an axis-aligned box: centre (x, y, z) of its base
    on the ground (y down: the top is at y - height), size (width, height, depth)."""
    x, y, z = centre
    w, h, d = size
    lo = np.array([x - w / 2, y - h, z - d / 2])
    ex, ey, ez = np.array([w, 0, 0.0]), np.array([0, h, 0.0]), np.array([0, 0, d * 1.0])
    faces = [(lo, ex, ey), (lo + ez, ex, ey), (lo, ez, ey), (lo + ex, ez, ey), (lo, ex, ez)]  # front, back, left, right, top
    return [Rect(np.asarray(p0, float), np.asarray(u, float), np.asarray(v, float), texture, texel, owner) for p0, u, v in faces]


def make_scene(kind: str, seed: int = 0, moving: bool = True, textures: int = 19) -> Scene:
    """'street': a road between two rows of facades with boxes (parked cars, crates) and, with
    ``moving``, one box driving along; 'room': a 10 x 3 x 12 m room with furniture-sized boxes.
    Both are closed (a far enclosure), so every ray hits a surface. Camera height 1.5 m."""
    rng = np.random.default_rng(seed)
    tex = lambda: int(rng.integers(0, textures))  # noqa: E731
    rects: list = []
    motions: dict = {}
    ground = 1.5  # y of the ground (y down, camera at y = 0)
    if kind == "street":
        rects.append(Rect(np.array([-40.0, ground, -20.0]), np.array([80.0, 0, 0]), np.array([0, 0, 160.0]), tex(), 2.0))
        for side in (-1, 1):  # facades at x = +-7 m, in blocks of different textures
            for z0 in range(-20, 140, 20):
                rects.append(Rect(np.array([7.0 * side, ground - 12.0, float(z0)]), np.array([0, 12.0, 0]),
                                  np.array([0, 0, 20.0]), tex(), float(rng.uniform(1.5, 4.0))))
        for _ in range(10):  # parked boxes along both kerbs
            x = float(rng.choice([-5.0, 5.0]) + rng.uniform(-0.5, 0.5))
            rects += box((x, ground, float(rng.uniform(4, 90))), (1.8, float(rng.uniform(1.2, 2.2)), float(rng.uniform(2, 4.5))),
                         tex(), 1.0)
        if moving:
            rects += box((2.0, ground, 14.0), (1.8, 1.5, 4.0), tex(), 1.0, owner=1)
            motions[1] = (rotation(), np.array([0.0, 0.0, 0.9]))  # 0.9 m per frame forward, in the next lane
        far = 150.0
    else:
        w, h, d = 10.0, 3.0, 12.0
        top = ground - h
        rects.append(Rect(np.array([-w / 2, ground, -2.0]), np.array([w, 0, 0]), np.array([0, 0, d]), tex(), 1.0))  # floor
        rects.append(Rect(np.array([-w / 2, top, -2.0]), np.array([w, 0, 0]), np.array([0, 0, d]), tex(), 1.5))  # ceiling
        rects.append(Rect(np.array([-w / 2, top, d - 2.0]), np.array([w, 0, 0]), np.array([0, h, 0]), tex(), 1.0))  # far wall
        for x in (-w / 2, w / 2):
            rects.append(Rect(np.array([x, top, -2.0]), np.array([0, 0, d]), np.array([0, h, 0]), tex(), 1.0))
        rects.append(Rect(np.array([-w / 2, top, -2.0]), np.array([w, 0, 0]), np.array([0, h, 0]), tex(), 1.0))  # wall behind
        for _ in range(6):
            rects += box((float(rng.uniform(-3.5, 3.5)), ground, float(rng.uniform(2.5, 8.5))),
                         (float(rng.uniform(0.5, 1.5)), float(rng.uniform(0.4, 1.8)), float(rng.uniform(0.5, 1.5))), tex(), 0.5)
        if moving:
            rects += box((-2.5, ground, 5.0), (0.6, 0.6, 0.6), tex(), 0.3, owner=1)
            motions[1] = (rotation(), np.array([0.08, 0.0, 0.0]))  # a rolling box, 8 cm per frame sideways
        far = 40.0
    # The enclosure: six far faces, so a ray that misses everything else still hits something.
    for axis in range(3):
        for sign in (-1.0, 1.0):
            p0 = np.full(3, -far)
            p0[axis] = sign * far
            u, v = np.zeros(3), np.zeros(3)
            u[(axis + 1) % 3], v[(axis + 2) % 3] = 2 * far, 2 * far
            rects.append(Rect(p0, u, v, tex(), 10.0))
    return Scene(rects, motions)


def trajectory(kind: str, frames: int, seed: int = 0) -> list:
    """Camera-to-world poses (R, t) for ``frames`` frames at 10 Hz: 'forward' (driving at 1 m per
    frame with a gentle weave), 'turn' (0.6 m per frame, turning 3 degrees per frame), 'handheld'
    (a slow walk with shake), 'drone_yaw' (yawing 4 degrees per frame while drifting sideways)."""
    rng = np.random.default_rng(seed)
    poses, yaw, position = [], 0.0, np.zeros(3)
    for i in range(frames):
        if kind == "forward":
            yaw = 0.02 * math.sin(i / 4)
            R = rotation(yaw, 0.01 * math.sin(i / 3))
            position = np.array([0.3 * math.sin(i / 6), 0.0, 1.0 * i])
        elif kind == "turn":
            yaw = math.radians(3.0) * i
            R = rotation(yaw)
            position = position + (R @ np.array([0, 0, 0.6]) if i else 0)
        elif kind == "handheld":
            R = rotation(*(rng.normal(0, math.radians(1.0), 3) + np.array([0.05 * math.sin(i / 5), 0, 0])))
            position = np.array([0.0, 0.0, 0.15 * i]) + rng.normal(0, 0.02, 3)
        elif kind == "drone_yaw":
            R = rotation(math.radians(4.0) * i, math.radians(-5.0))
            position = np.array([0.15 * i, -0.5, 1.0])
        else:
            raise ValueError(f"trajectory must be one of {TRAJECTORIES}, got {kind!r}")
        poses.append((R, np.array(position, float)))
    return poses


class Renderer:
    """Renders a Scene for a Camera (torch, CPU or GPU): see the module docstring."""

    def __init__(self, scene: Scene, camera: Camera, device="cpu", texture_size: int = 256) -> None:
        self.scene, self.camera, self.device = scene, camera, torch.device(device)
        bank = load_photo_bank(texture_size)
        if bank.numel() == 0:
            raise RuntimeError("no bundled textures (scikit-image's photographs) found")
        # A mip pyramid of every texture (2x2 means), sampled at the level of each pixel's footprint:
        # far and grazing surfaces would otherwise alias, differently in the two frames.
        self.mips = [bank.to(self.device)]
        while self.mips[-1].shape[-1] > 4:
            self.mips.append(F.avg_pool2d(self.mips[-1], 2))
        self.texture_size = texture_size
        # fp32: against fp64 the flow differs by at most 6.5e-5 px (median 4e-6) on the street at
        # 320x240, surfaces up to 150 m away, and rendering takes half the time.
        self.dtype = torch.float32
        t = lambda key: torch.tensor(np.stack([getattr(r, key) for r in scene.rects]), dtype=self.dtype, device=self.device)  # noqa: E731
        self.p0, self.u, self.v = t("p0"), t("u"), t("v")
        self.owner = torch.tensor([r.owner for r in scene.rects], device=self.device)
        self.texture_index = torch.tensor([r.texture % len(bank) for r in scene.rects], device=self.device)
        self.texel = torch.tensor([r.texel for r in scene.rects], dtype=self.dtype, device=self.device)
        cam = camera
        ys, xs = torch.meshgrid(torch.arange(cam.height, dtype=self.dtype), torch.arange(cam.width, dtype=self.dtype), indexing="ij")
        self.pixels = torch.stack([xs, ys], -1).to(self.device)  # (H, W, 2)
        self.rays = torch.stack([(xs - cam.cx) / cam.fx, (ys - cam.cy) / cam.fy, torch.ones_like(xs)], -1).to(self.device)

    def _rects_at(self, frame: int):
        """Rectangle corners at ``frame`` (moving objects moved ``frame`` times)."""
        p0, u, v = self.p0.clone(), self.u.clone(), self.v.clone()
        for owner, (R, t) in self.scene.motions.items():
            mask = self.owner == owner
            Rk, tk = np.linalg.matrix_power(R, frame), sum((np.linalg.matrix_power(R, j) @ t for j in range(frame)), np.zeros(3))
            Rt = torch.tensor(Rk, dtype=self.dtype, device=self.device)
            p0[mask] = p0[mask] @ Rt.T + torch.tensor(tk, dtype=self.dtype, device=self.device)
            u[mask], v[mask] = u[mask] @ Rt.T, v[mask] @ Rt.T
        return p0, u, v

    def hits(self, pose, frame: int):
        """Per pixel: (depth z (H, W), rect index (H, W), a, b (H, W), world point (H, W, 3))."""
        R = torch.tensor(pose[0], dtype=self.dtype, device=self.device)
        origin = torch.tensor(pose[1], dtype=self.dtype, device=self.device)
        d = self.rays @ R.T  # world directions, z-component of the camera ray is 1
        p0, u, v = self._rects_at(frame)
        n = torch.cross(u, v, dim=-1)  # (N, 3)
        denom = d @ n.T  # (H, W, N)
        t = ((p0 - origin) * n).sum(-1) / torch.where(denom.abs() < 1e-12, torch.full_like(denom, 1e-12), denom)
        X = origin + t.unsqueeze(-1) * d.unsqueeze(-2)  # (H, W, N, 3)
        rel = X - p0
        a = (rel * u).sum(-1) / (u * u).sum(-1)
        b = (rel * v).sum(-1) / (v * v).sum(-1)
        inside = (t > 1e-6) & (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)
        t = torch.where(inside, t, torch.full_like(t, float("inf")))
        depth, index = t.min(-1)
        pick = lambda x: x.gather(-1, index.unsqueeze(-1)).squeeze(-1)  # noqa: E731
        point = X.gather(-2, index[..., None, None].expand(*index.shape, 1, 3)).squeeze(-2)
        return depth, index, pick(a), pick(b), point

    def colour(self, index, a, b, footprint) -> torch.Tensor:
        """(H, W, 3) float [0, 1]: each pixel's texture, tiled every ``texel`` metres, from the mip
        level of its footprint (metres of surface per pixel)."""
        u_len = self.u.norm(dim=-1)[index]
        v_len = self.v.norm(dim=-1)[index]
        texel = self.texel[index]
        s = torch.remainder(a * u_len / texel, 1.0) * 2 - 1
        r = torch.remainder(b * v_len / texel, 1.0) * 2 - 1
        texels_per_pixel = footprint * self.texture_size / texel
        level = torch.log2(texels_per_pixel.clamp_min(1.0)).round().long().clamp(0, len(self.mips) - 1)
        out = torch.zeros(*index.shape, 3, dtype=torch.float32, device=self.device)
        key = index * len(self.mips) + level
        for k in torch.unique(key).tolist():  # one grid_sample per visible rectangle and level
            mask = key == k
            rect, lod = divmod(k, len(self.mips))
            grid = torch.stack([s[mask], r[mask]], -1).float().view(1, 1, -1, 2)
            tex = self.mips[lod][self.texture_index[rect]].unsqueeze(0)
            out[mask] = F.grid_sample(tex, grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0, :, 0].T
        return out

    def render(self, pose, frame: int) -> dict:
        depth, index, a, b, point = self.hits(pose, frame)
        # Surface metres per pixel: depth / focal, stretched by the slant of the surface.
        R = torch.tensor(pose[0], dtype=self.dtype, device=self.device)
        p0, u, v = self._rects_at(frame)
        normal = torch.nn.functional.normalize(torch.cross(u, v, dim=-1), dim=-1)[index]
        ray = torch.nn.functional.normalize(self.rays @ R.T, dim=-1)
        slant = (normal * ray).sum(-1).abs().clamp_min(0.05)
        footprint = depth * ray.new_tensor(1.0) / self.camera.fx / slant * torch.linalg.norm(self.rays, dim=-1)
        return {"image": self.colour(index, a, b, footprint), "depth": depth, "index": index, "point": point}

    def pair(self, pose1, pose2, frame: int = 0) -> dict:
        """Frames ``frame`` and ``frame + 1`` seen from pose1 and pose2: image1, image2 ((H, W, 3)
        uint8 RGB numpy), flow (H, W, 2) float32 px, occlusion (H, W) bool, depth1 (H, W) float32 m,
        and the relative motion (R_21, t_21) mapping camera-1 coordinates to camera-2 ones."""
        first, second = self.render(pose1, frame), self.render(pose2, frame + 1)
        point = first["point"]
        # A point on a moving object moves with it between the frames.
        owner = self.owner[first["index"]]
        for k, (R, t) in self.scene.motions.items():
            mask = owner == k
            point[mask] = point[mask] @ torch.tensor(R, dtype=self.dtype, device=self.device).T + torch.tensor(t, dtype=self.dtype, device=self.device)
        R2 = torch.tensor(pose2[0], dtype=self.dtype, device=self.device)
        X2 = (point - torch.tensor(pose2[1], dtype=self.dtype, device=self.device)) @ R2  # camera-2 coordinates
        z2 = X2[..., 2]
        cam = self.camera
        p2 = torch.stack([cam.fx * X2[..., 0] / z2 + cam.cx, cam.fy * X2[..., 1] / z2 + cam.cy], -1)
        flow = p2 - self.pixels
        inside = (z2 > 1e-6) & (p2[..., 0] >= 0) & (p2[..., 0] <= cam.width - 1) & (p2[..., 1] >= 0) & (p2[..., 1] <= cam.height - 1)
        # Visible in frame 2 where the second frame's depth at the destination is not nearer.
        xi = p2[..., 0].round().clamp(0, cam.width - 1).long()
        yi = p2[..., 1].round().clamp(0, cam.height - 1).long()
        nearer = second["depth"][yi, xi] < z2 * 0.98 - 0.02
        occlusion = ~inside | nearer
        R1 = np.asarray(pose1[0])
        R21 = pose2[0].T @ R1
        t21 = pose2[0].T @ (np.asarray(pose1[1]) - np.asarray(pose2[1]))
        as_uint8 = lambda x: (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()  # noqa: E731
        return {"image1": as_uint8(first["image"]), "image2": as_uint8(second["image"]),
                "flow": flow.float().cpu().numpy(), "occlusion": occlusion.cpu().numpy(),
                "depth1": first["depth"].float().cpu().numpy(), "R_21": R21, "t_21": t21}


class Scene3DFlow:
    """Training pairs from rendered 3D scenes, in the form of lfn_ros.data.synthetic.SyntheticFlow's
    ``sample(batch, size)``: image1, image2 (B, 3, H, W) float [0, 1], flow (B, 2, H, W) px,
    occlusion and valid (B, 1, H, W) bool. Each pair draws a scene (street or room, with a
    moving box), a trajectory and a start frame, and intrinsics with a field of view of 50-90
    degrees. Slower than the 2D generator (docs/training.md gives both rates)."""

    def __init__(self, seed: int = 0, device="cpu") -> None:
        self.rng = np.random.default_rng(seed)
        self.device = device

    def sample(self, batch: int, size: tuple) -> dict:
        height, width = (int(v) for v in size)
        out = {k: [] for k in ("image1", "image2", "flow", "occlusion")}
        for _ in range(batch):
            fov = math.radians(self.rng.uniform(50, 90))
            f = width / 2 / math.tan(fov / 2)
            camera = Camera(width, height, f, f, (width - 1) / 2, (height - 1) / 2)
            seed = int(self.rng.integers(1 << 30))
            scene = make_scene(str(self.rng.choice(SCENES)), seed)
            frame = int(self.rng.integers(0, 20))
            poses = trajectory(str(self.rng.choice(TRAJECTORIES)), frame + 2, seed)
            pair = Renderer(scene, camera, self.device).pair(poses[frame], poses[frame + 1], frame)
            out["image1"].append(torch.from_numpy(pair["image1"]).permute(2, 0, 1).float() / 255)
            out["image2"].append(torch.from_numpy(pair["image2"]).permute(2, 0, 1).float() / 255)
            out["flow"].append(torch.from_numpy(pair["flow"]).permute(2, 0, 1))
            out["occlusion"].append(torch.from_numpy(pair["occlusion"])[None])
        batch_dict = {k: torch.stack(v) for k, v in out.items()}
        batch_dict["valid"] = torch.ones_like(batch_dict["occlusion"])
        return batch_dict


def render_sequence(scene_kind: str, trajectory_kind: str, frames: int, camera: Camera | None = None, seed: int = 0,
                    moving: bool = True) -> dict:
    """A rendered sequence: frames (list of (H, W, 3) uint8), poses [(R, t)], pairs (the
    :meth:`Renderer.pair` dicts of consecutive frames), camera."""
    camera = camera or Camera()
    renderer = Renderer(make_scene(scene_kind, seed, moving), camera)
    poses = trajectory(trajectory_kind, frames, seed)
    pairs = [renderer.pair(poses[i], poses[i + 1], i) for i in range(frames - 1)]
    return {"frames": [pairs[0]["image1"]] + [p["image2"] for p in pairs], "poses": poses, "pairs": pairs, "camera": camera}


def write_sequence(folder, sequence: dict) -> Path:
    """frame_NNNN.png, flow_NNNN.flo (NNNN -> NNNN+1), camera_info.yaml (ROS CameraInfo fields),
    poses.json (camera-to-world R, t per frame)."""
    from ..io import write_flo, write_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(sequence["frames"]):
        write_image(folder / f"frame_{i:04d}.png", frame)
    for i, pair in enumerate(sequence["pairs"]):
        write_flo(folder / f"flow_{i:04d}.flo", pair["flow"])
    cam = sequence["camera"]
    (folder / "camera_info.yaml").write_text(
        f"image_width: {cam.width}\nimage_height: {cam.height}\ndistortion_model: plumb_bob\nd: [0.0, 0.0, 0.0, 0.0, 0.0]\n"
        f"k: [{cam.fx}, 0.0, {cam.cx}, 0.0, {cam.fy}, {cam.cy}, 0.0, 0.0, 1.0]\n")
    (folder / "poses.json").write_text(json.dumps([{"R": R.tolist(), "t": t.tolist()} for R, t in sequence["poses"]]))
    return folder


if __name__ == "__main__":  # python -m lfn_ros.data.scenes3d OUT_DIR [scene] [trajectory] [frames]
    import sys

    defaults = ["out/scene3d", "street", "forward", "20"]
    out, scene_kind, trajectory_kind, count = sys.argv[1:5] + defaults[len(sys.argv[1:5]):]
    print(write_sequence(out, render_sequence(scene_kind, trajectory_kind, int(count))))
