"""Synthetic training pairs with exact optical flow and occlusion, generated on the fly in torch.

docs/architecture.md section 4: lfn_ros trains its own weights, on data it generates itself. Every sample is
a *layered scene*: a background layer and up to ``max_layers`` foreground layers (convex
polygons, ellipses and harmonic "blobs"), each an infinite textured plane cut out by an alpha
mask, stacked back to front. Textures are photographs bundled inside scikit-image (loaded from
the installed package, never downloaded) and procedural patterns (multi-octave value noise,
stripes, checkers) drawn fresh for every sample.

Geometry, and why the ground truth is exact
-------------------------------------------
Pixel centres are integer coordinates, x right and y down (the convention of ``ops.warp``).
Every layer ``l`` lives in its own *frame-1 coordinates*: its shape, its alpha and its texture
are fixed functions of a frame-1 position ``q`` (the texture is a bilinearly sampled image; the
shape is the zero sublevel set of a bilinearly sampled signed-distance raster, tabulated once per
layer from the polygon / ellipse / blob so that every per-pixel test is one ``grid_sample``).
Its motion is a forward map
``F_l: frame 1 -> frame 2``, written around the layer centre ``c``::

    F_l(q) = c + t + M (N(q - c))          M = R(rotation) @ diag(s, s * a) @ [[1, shear], [0, 1]]
    N(d) = (x3, y2),  x1 = dx + f(dy),  y2 = dy + g(x1),  x3 = x1 + h(y2)

``M`` is an affine map (translation ``t``, rotation, scale, anisotropy, shear) and ``N`` the
smooth non-rigid part: three *coupling* shears, each moving one coordinate by a low-frequency
function (a sum of random sinusoids) of the other. A coupling shear is a bijection whatever the
function, and its inverse is closed-form (``dx = x1 - f(dy)``, ...), so both directions of
``F_l`` are exact, with no iterative inversion anywhere:

- frame 1 at pixel ``p``: each layer is evaluated at ``q = p``;
- frame 2 at pixel ``p`` (backward mapping): each layer is evaluated at ``q = F_l^-1(p)``, i.e.
  its frame-2 appearance is its texture sampled through the inverse motion;
- the flow at frame-1 pixel ``p`` is ``F_v(p) - p`` for the layer ``v`` visible at ``p`` (the
  front-most layer whose shape contains ``p``);
- ``p`` is occluded when its destination ``F_v(p)`` is outside the frame (``[0, W-1] x
  [0, H-1]``, the range ``ops.warp`` can sample) or lies inside the shape of a layer in front
  of ``v`` in frame 2 (tested exactly through that layer's ``F^-1``).

So frame 2 warped back by the flow reproduces frame 1 on every non-occluded pixel, up to the
bilinear interpolation of the warp and the one-pixel anti-aliased edges (see the tests). Flow
is in pixels, ``(B, 2, H, W)``, channel 0 = x, channel 1 = y, frame 1 -> frame 2.

Motion blur (along each pixel's own motion, the shutter open around the frame time), then
photometric augmentation (brightness, contrast, gamma, channel gains, Gaussian noise) and blur
are applied to the rendered frames afterwards, with parameters that differ slightly between the
two frames; they change no geometry. ``SyntheticConfig(augment=False)`` switches them off.

Everything is vectorised over the batch and the layers and runs on the generator's device (GPU
for training, CPU for tests); all randomness comes from one ``torch.Generator``, so a seed gives
the same batches and :meth:`SyntheticFlow.get_state` / :meth:`set_state` resume a stream exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .photometric import augment_pair, motion_blur_pair
from .synthetic_config import SyntheticConfig
from .textures import bundled_texture_files, layer_textures, load_photo_bank

__all__ = ["SyntheticConfig", "SyntheticFlow", "bundled_texture_files"]

SHAPE_POLYGON, SHAPE_ELLIPSE, SHAPE_BLOB = 0, 1, 2
#: Upper bound of polygon sides (tensors are padded to it).
MAX_SIDES = 8
#: Half-width of the shape rasters in local units (shapes lie within radius 1.45 < 1.6).
SHAPE_EXTENT = 1.6


class SyntheticFlow:
    """Batched generator of layered synthetic pairs with exact flow and occlusion.

    Args:
        height, width: frame size in pixels (any; the trainer uses multiples of 32).
        device: where samples are generated and returned ("cuda" for training).
        seed: seed of the generator (same seed and device: same samples).
        config: a :class:`SyntheticConfig` (default one if None).
        max_layers: tensor slots for foreground layers (>= config.layers[1]).

    :meth:`sample` returns a dict:

    - ``image1``, ``image2``: (B, 3, H, W) float32 RGB in [0, 1];
    - ``flow``: (B, 2, H, W) float32, pixels, frame 1 -> frame 2, channel 0 = x, 1 = y;
    - ``occlusion``: (B, 1, H, W) bool, True where the frame-1 pixel has no match in frame 2;
    - ``valid``: (B, 1, H, W) bool, where the flow is defined (everywhere here).
    """

    def __init__(self, height: int, width: int, device="cpu", seed: int = 0, config: SyntheticConfig | None = None,
                 max_layers: int | None = None) -> None:
        if height < 8 or width < 8:
            raise ValueError(f"frames must be at least 8x8 pixels, got {height}x{width}")
        self.height, self.width = int(height), int(width)
        self.device = torch.device(device)
        self.config = config or SyntheticConfig()
        lo, hi = self.config.layers
        if not 0 <= lo <= hi:
            raise ValueError(f"config.layers must be a range 0 <= low <= high, got {self.config.layers}")
        if self.config.large_motion_dist not in ("loguniform", "uniform"):
            raise ValueError(f"config.large_motion_dist must be 'loguniform' or 'uniform', got {self.config.large_motion_dist!r}")
        self.max_fg = max(hi, max_layers or 0)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        self.photos = load_photo_bank(self.config.texture_size).to(self.device)
        self._grids: dict = {}
        self._gy, self._gx = self._grid(self.height, self.width)

    def _grid(self, height: int, width: int):
        """(H, W) pixel-centre coordinates (y, x), cached per size."""
        grid = self._grids.get((height, width))
        if grid is None:
            ys = torch.arange(height, device=self.device, dtype=torch.float32)
            xs = torch.arange(width, device=self.device, dtype=torch.float32)
            grid = self._grids[(height, width)] = torch.meshgrid(ys, xs, indexing="ij")
        return grid

    # ------------------------------------------------------------------ random helpers
    def _rand(self, *shape) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, device=self.device)

    def _randn(self, *shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device)

    def _uniform(self, lo, hi, *shape) -> torch.Tensor:
        return lo + (hi - lo) * self._rand(*shape)

    def _log_uniform(self, lo, hi, *shape) -> torch.Tensor:
        return torch.exp(self._uniform(math.log(lo), math.log(hi), *shape))

    def _signed(self, *shape) -> torch.Tensor:
        """Values in [-1, 1]: sign(v) * |v| ** affine_power with v uniform (small ones common)."""
        v = self._uniform(-1, 1, *shape)
        return v.sign() * v.abs().pow(self.config.affine_power)

    def get_state(self) -> torch.Tensor:
        """The generator state (a CPU uint8 tensor) for checkpoints."""
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        """Restore a state returned by :meth:`get_state`."""
        self.generator.set_state(state.cpu() if torch.is_tensor(state) else torch.as_tensor(state))

    # ------------------------------------------------------------------ scene parameters
    def _scene(self, batch: int, size: tuple | None = None) -> dict:
        """Random parameters of every layer, each tensor (B, L, ...) with L = 1 + max_fg;
        layer 0 is the background, higher indices are in front. Drawn in a fixed order
        (layout, affine motion, non-rigid motion, shapes, texture maps) from one generator."""
        B, L = batch, 1 + self.max_fg
        H, W = size or (self.height, self.width)
        fg = torch.ones(B, L, device=self.device)
        fg[:, 0] = 0.0
        p: dict = {}
        self._layout(p, B, L, H, W, fg)
        self._affine(p, B, L, W, fg)
        if self.config.fast_object_prob > 0:
            self._fast_objects(p, B, L, H, W)
        self._nonrigid(p, B, L, H, W)
        self._shapes(p, B, L, H, W)
        self._texture_maps(p, B, L)
        return p

    def _layout(self, p: dict, B: int, L: int, H: int, W: int, fg: torch.Tensor) -> None:
        """How many layers are on, and their centres: background at the frame centre,
        foreground anywhere (a little beyond the edges)."""
        cfg, bg = self.config, 1.0 - fg
        count = torch.floor(self._uniform(cfg.layers[0], cfg.layers[1] + 1 - 1e-6, B, 1))
        slot = torch.arange(L, device=self.device).view(1, L)
        p["enabled"] = (slot == 0) | (slot <= count)
        p["count"] = count
        cx = self._uniform(-0.1 * W, 1.1 * W, B, L) * fg + bg * (W - 1) / 2
        cy = self._uniform(-0.1 * H, 1.1 * H, B, L) * fg + bg * (H - 1) / 2
        p["c"] = torch.stack([cx, cy], -1)

    def _affine(self, p: dict, B: int, L: int, W: int, fg: torch.Tensor) -> None:
        """Translation (small ones common, a heavy tail), rotation, scale, anisotropy, shear."""
        cfg, bg, ms = self.config, 1.0 - fg, self.config.motion_scale

        def between(bg_value, fg_value):
            return bg * bg_value + fg * fg_value

        u = self._rand(B, L)
        magnitude = between(cfg.bg_translation_width, cfg.fg_translation_width) * W * u.pow(1.5)
        large = self._rand(B, L) < cfg.large_motion_prob
        lo, hi = cfg.large_motion
        tail = self._log_uniform(lo, hi, B, L) if cfg.large_motion_dist == "loguniform" else self._uniform(lo, hi, B, L)
        magnitude = torch.where(large, tail * W, magnitude) * ms
        direction = self._uniform(0.0, 2 * math.pi, B, L)
        p["t"] = torch.stack([magnitude * torch.cos(direction), magnitude * torch.sin(direction)], -1)
        rot = self._signed(B, L) * between(cfg.bg_rotation, cfg.fg_rotation) * math.pi / 180
        scale = torch.exp(self._signed(B, L) * between(cfg.bg_scale, cfg.fg_scale))
        aniso = torch.exp(self._signed(B, L) * between(cfg.bg_anisotropy, cfg.fg_anisotropy))
        shear = self._signed(B, L) * between(cfg.bg_shear, cfg.fg_shear)
        cos, sin = torch.cos(rot), torch.sin(rot)
        # M = R @ diag(s, s * a) @ [[1, shear], [0, 1]]
        m00, m01 = cos * scale, cos * scale * shear - sin * scale * aniso
        m10, m11 = sin * scale, sin * scale * shear + cos * scale * aniso
        p["M"] = torch.stack([m00, m01, m10, m11], -1)
        det = m00 * m11 - m01 * m10
        p["Minv"] = torch.stack([m11 / det, -m01 / det, -m10 / det, m00 / det], -1)

    def _fast_objects(self, p: dict, B: int, L: int, H: int, W: int) -> None:
        """Fast objects (config.fast_*): the front-most foreground layers of some samples move
        fast relative to the background, and their centres are placed so that the middle of
        the path lies inside the frame (a fast object is seen in both frames, mostly)."""
        cfg = self.config
        has = self._rand(B, 1) < cfg.fast_object_prob
        lo, hi = cfg.fast_objects
        number = torch.floor(self._uniform(lo, hi + 1 - 1e-6, B, 1))
        slot = torch.arange(L, device=self.device).view(1, L)
        fast = has & p["enabled"] & (slot >= 1) & (slot > p["count"] - number)
        cap = cfg.fast_motion_max_width * W
        low, high = min(cfg.fast_motion[0], cap), min(cfg.fast_motion[1], cap)
        magnitude = self._log_uniform(max(low, 1e-3), max(high, 1e-3), B, L) * cfg.motion_scale
        direction = self._uniform(0.0, 2 * math.pi, B, L)
        relative = torch.stack([magnitude * torch.cos(direction), magnitude * torch.sin(direction)], -1)
        middle = torch.stack([self._uniform(0.15, 0.85, B, L) * (W - 1), self._uniform(0.15, 0.85, B, L) * (H - 1)], -1)
        mask = fast.unsqueeze(-1)
        p["t"] = torch.where(mask, p["t"][:, :1] + relative, p["t"])
        p["c"] = torch.where(mask, middle - relative / 2, p["c"])
        p["fast"] = fast

    def _nonrigid(self, p: dict, B: int, L: int, H: int, W: int) -> None:
        """Non-rigid coupling shears f, g, h: two sinusoids each, slope-capped."""
        cfg, K = self.config, 2
        on = (self._rand(B, L, 1, 1) < cfg.nonrigid_prob).float()
        wavelength = self._uniform(cfg.nonrigid_wavelength[0], cfg.nonrigid_wavelength[1], B, L, 3, K) * max(H, W)
        freq = 2 * math.pi / wavelength
        amplitude = self._uniform(0.0, cfg.nonrigid_amplitude * cfg.motion_scale / K, B, L, 3, K)
        amplitude = torch.minimum(amplitude, cfg.nonrigid_max_slope / K / freq) * on
        p["wave"] = (amplitude, freq, self._uniform(0.0, 2 * math.pi, B, L, 3, K))

    def _shapes(self, p: dict, B: int, L: int, H: int, W: int) -> None:
        """Shape kind, radii, orientation (local coordinates: rotate by -phi, divide by the
        radii), polygon sides and jitter, blob harmonics."""
        cfg = self.config
        p["shape"] = torch.multinomial(torch.tensor(cfg.shape_probs, device=self.device, dtype=torch.float32).expand(B * L, 3),
                                       1, generator=self.generator).view(B, L)
        radius = self._uniform(cfg.radius[0], cfg.radius[1], B, L) * min(H, W)
        if "fast" in p:  # fast objects are small enough to move far inside the frame
            radius = torch.where(p["fast"], self._uniform(cfg.fast_radius[0], cfg.fast_radius[1], B, L) * min(H, W), radius)
        aspect = self._log_uniform(cfg.aspect[0], cfg.aspect[1], B, L).sqrt()
        rx, ry = radius * aspect, radius / aspect
        p["r"] = torch.stack([rx, ry], -1)
        p["r_px"] = torch.sqrt(rx * ry)  # local units -> (roughly) pixels
        phi = self._uniform(0.0, 2 * math.pi, B, L)
        cos, sin = torch.cos(phi), torch.sin(phi)
        # pixel offset from the centre -> local coordinates / SHAPE_EXTENT
        e = SHAPE_EXTENT
        p["rot_shape"] = torch.stack([cos / (rx * e), sin / (rx * e), -sin / (ry * e), cos / (ry * e)], -1)
        p["sides"] = torch.floor(self._uniform(3, MAX_SIDES + 1 - 1e-6, B, L)).long()
        p["jitter"] = self._uniform(-0.35, 0.35, B, L, MAX_SIDES)
        harmonics = self._randn(B, L, 3)
        harmonics = harmonics / harmonics.abs().sum(-1, keepdim=True).clamp_min(1e-6)
        p["blob"] = (harmonics * self._uniform(cfg.blob_amplitude[0], cfg.blob_amplitude[1], B, L, 1),
                     self._uniform(0.0, 2 * math.pi, B, L, 3))

    def _texture_maps(self, p: dict, B: int, L: int) -> None:
        """Texture mapping: frame-1 offset from the centre (pixels) -> grid_sample coordinates."""
        cfg = self.config
        texels = self._log_uniform(cfg.texels_per_pixel[0], cfg.texels_per_pixel[1], B, L)
        k = texels * 2.0 / cfg.texture_size
        psi = self._uniform(0.0, 2 * math.pi, B, L)
        p["T"] = torch.stack([k * torch.cos(psi), -k * torch.sin(psi), k * torch.sin(psi), k * torch.cos(psi)], -1)
        p["T0"] = self._uniform(-1.0, 1.0, B, L, 2)

    # ------------------------------------------------------------------ geometry
    @staticmethod
    def _p(t: torch.Tensor) -> torch.Tensor:
        """(B, L, ...) parameter -> broadcastable against (B, L, H, W)."""
        return t[..., None, None] if t.dim() == 2 else t.unsqueeze(-1).unsqueeze(-1)

    def _wave(self, p: dict, which: int, z: torch.Tensor) -> torch.Tensor:
        amplitude, freq, phase = p["wave"]
        out = torch.zeros_like(z)
        for k in range(amplitude.shape[-1]):
            a = amplitude[:, :, which, k, None, None]
            out = out + a * torch.sin(freq[:, :, which, k, None, None] * z + phase[:, :, which, k, None, None])
        return out

    def forward_map(self, p: dict, x: torch.Tensor, y: torch.Tensor):
        """F_l: frame-1 positions (broadcastable to (B, L, H, W)) -> frame-2 positions, every layer."""
        c, t, m = self._p(p["c"]), self._p(p["t"]), self._p(p["M"])
        dx, dy = x - c[:, :, 0], y - c[:, :, 1]
        dx = dx + self._wave(p, 0, dy)
        dy = dy + self._wave(p, 1, dx)
        dx = dx + self._wave(p, 2, dy)
        x2 = c[:, :, 0] + t[:, :, 0] + m[:, :, 0] * dx + m[:, :, 1] * dy
        y2 = c[:, :, 1] + t[:, :, 1] + m[:, :, 2] * dx + m[:, :, 3] * dy
        return x2, y2

    def inverse_map(self, p: dict, x: torch.Tensor, y: torch.Tensor):
        """F_l^-1: frame-2 positions -> frame-1 positions, every layer (exact, closed form)."""
        c, t, mi = self._p(p["c"]), self._p(p["t"]), self._p(p["Minv"])
        ex, ey = x - c[:, :, 0] - t[:, :, 0], y - c[:, :, 1] - t[:, :, 1]
        dx = mi[:, :, 0] * ex + mi[:, :, 1] * ey
        dy = mi[:, :, 2] * ex + mi[:, :, 3] * ey
        dx = dx - self._wave(p, 2, dy)
        dy = dy - self._wave(p, 1, dx)
        dx = dx - self._wave(p, 0, dy)
        return c[:, :, 0] + dx, c[:, :, 1] + dy

    def shape_rasters(self, p: dict) -> torch.Tensor:
        """(B*L, 1, R, R) signed distance of every layer's shape, in the layer's local units (shape
        radius 1), sampled on a regular grid over [-E, E]^2 (E = ``SHAPE_EXTENT``, R =
        ``config.shape_resolution``). The shape *is* the zero sublevel set of the bilinear
        interpolation of this raster, the same function in both frames and in the occlusion test,
        so the ground truth stays exact while every per-pixel evaluation is one ``grid_sample``.
        The background is -1e3 everywhere (always inside), disabled layers +1e3 (never)."""
        B, L = p["shape"].shape
        R = self.config.shape_resolution
        axis = torch.linspace(-SHAPE_EXTENT, SHAPE_EXTENT, R, device=self.device)
        uy, ux = torch.meshgrid(axis, axis, indexing="ij")
        ux, uy = ux.view(1, 1, R, R), uy.view(1, 1, R, R)
        rho = torch.sqrt(ux * ux + uy * uy)
        theta = torch.atan2(uy, ux)

        sd_ellipse = (rho - 1.0).expand(B, L, R, R)
        amp, phase = p["blob"]
        radial = torch.ones(B, L, R, R, device=self.device)
        for k in range(3):
            radial = radial + amp[:, :, k, None, None] * torch.cos((k + 2) * theta + phase[:, :, k, None, None])
        sd_blob = rho - radial

        # Convex polygon inscribed in the unit circle: max over edges of (u . normal - distance).
        n = p["sides"].unsqueeze(-1)
        idx = torch.arange(MAX_SIDES, device=self.device).view(1, 1, MAX_SIDES)
        jitter = p["jitter"]
        a0 = 2 * math.pi * (idx + jitter) / n
        a1 = 2 * math.pi * (idx + 1 + jitter.gather(-1, torch.remainder(idx + 1, n))) / n
        mid, half = (a0 + a1) / 2, (a1 - a0) / 2
        dist = torch.where(idx < n, torch.cos(half), torch.full_like(half, 1e4))
        sd_poly = None
        for i in range(MAX_SIDES):
            e = ux * torch.cos(mid[:, :, i, None, None]) + uy * torch.sin(mid[:, :, i, None, None]) - dist[:, :, i, None, None]
            sd_poly = e if sd_poly is None else torch.maximum(sd_poly, e)

        shape = self._p(p["shape"])
        sd = torch.where(shape == SHAPE_POLYGON, sd_poly, torch.where(shape == SHAPE_ELLIPSE, sd_ellipse, sd_blob))
        layer = torch.arange(L, device=self.device).view(1, L, 1, 1)
        sd = torch.where(layer == 0, torch.full_like(sd, -1e3), sd)
        sd = torch.where(self._p(p["enabled"]), sd, torch.full_like(sd, 1e3))
        return sd.reshape(B * L, 1, R, R)

    def signed_distance(self, p: dict, rasters: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Signed distance (roughly pixels, < 0 inside) of frame-1 positions x, y (B, L, H, W) to
        every layer's shape, from :meth:`shape_rasters`."""
        B, L, H, W = x.shape
        c, r, rot = self._p(p["c"]), self._p(p["r"]), self._p(p["rot_shape"])
        dx, dy = x - c[:, :, 0], y - c[:, :, 1]
        # local / E, ready for grid_sample (align_corners=True: -1 and 1 are the raster's end samples)
        gx = rot[:, :, 0] * dx + rot[:, :, 1] * dy
        gy = rot[:, :, 2] * dx + rot[:, :, 3] * dy
        grid = torch.stack([gx, gy], -1).view(B * L, H, W, 2)
        sd = F.grid_sample(rasters, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return sd.view(B, L, H, W) * self._p(p["r_px"])

    # ------------------------------------------------------------------ textures
    # ------------------------------------------------------------------ rendering
    def _render(self, p: dict, rasters: torch.Tensor, textures: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
        """Composite every layer evaluated at its frame-1 positions (x, y) (B, L, H, W).
        Returns (B, 3, H, W) image and (B, L, H, W) bool 'inside the shape'."""
        B, L, H, W = x.shape
        sd = self.signed_distance(p, rasters, x, y)
        alpha = (0.5 - sd / self.config.edge_softness).clamp(0.0, 1.0)
        c, T, T0 = self._p(p["c"]), self._p(p["T"]), self._p(p["T0"])
        dx, dy = x - c[:, :, 0], y - c[:, :, 1]
        gx = T[:, :, 0] * dx + T[:, :, 1] * dy + T0[:, :, 0]
        gy = T[:, :, 2] * dx + T[:, :, 3] * dy + T0[:, :, 1]
        grid = torch.stack([gx, gy], -1).view(B * L, H, W, 2)
        colour = F.grid_sample(textures, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        colour = colour.view(B, L, 3, H, W)
        image = colour[:, 0]
        for layer in range(1, L):
            a = alpha[:, layer : layer + 1]
            image = image + a * (colour[:, layer] - image)
        return image, sd < 0

    # ------------------------------------------------------------------ public
    @torch.no_grad()
    def sample(self, batch: int, size: tuple | None = None) -> dict:
        """Generate ``batch`` pairs; see the class docstring for the returned dict. ``size``
        (H, W) overrides the frame size for this call (mixed crop sizes share one stream)."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        H, W = (int(v) for v in size) if size else (self.height, self.width)
        if H < 8 or W < 8:
            raise ValueError(f"frames must be at least 8x8 pixels, got {H}x{W}")
        B = int(batch)
        grid_y, grid_x = self._grid(H, W)
        p = self._scene(B, (H, W))
        L = 1 + self.max_fg
        textures = layer_textures(self, B * L, p["enabled"].reshape(-1))
        gx = grid_x.view(1, 1, H, W).expand(B, L, H, W)
        gy = grid_y.view(1, 1, H, W).expand(B, L, H, W)

        rasters = self.shape_rasters(p)
        image1, inside1 = self._render(p, rasters, textures, gx, gy)
        x1, y1 = self.inverse_map(p, gx, gy)
        image2, inside2 = self._render(p, rasters, textures, x1, y1)

        # Flow of the visible (front-most inside) layer.
        layer = torch.arange(L, device=self.device).view(1, L, 1, 1)
        visible = torch.where(inside1, layer, torch.zeros_like(layer)).amax(dim=1, keepdim=True)  # (B, 1, H, W)
        fx, fy = self.forward_map(p, gx, gy)
        dest_x = fx.gather(1, visible)
        dest_y = fy.gather(1, visible)
        flow = torch.cat([dest_x - grid_x, dest_y - grid_y], dim=1)

        # Occlusion: the destination leaves the frame, or a layer in front covers it in frame 2.
        outside = (dest_x < 0) | (dest_x > W - 1) | (dest_y < 0) | (dest_y > H - 1)
        bx, by = self.inverse_map(p, dest_x.expand(B, L, H, W), dest_y.expand(B, L, H, W))
        covered = (self.signed_distance(p, rasters, bx, by) < 0) & (layer > visible)
        occlusion = outside | covered.any(dim=1, keepdim=True)

        if self.config.motion_blur_prob > 0:
            # Frame 2's pixel p shows the front-most layer inside there; it came from x1, y1.
            visible2 = torch.where(inside2, layer, torch.zeros_like(layer)).amax(dim=1, keepdim=True)
            motion2 = torch.cat([grid_x - x1.gather(1, visible2), grid_y - y1.gather(1, visible2)], dim=1)
            image1, image2 = motion_blur_pair(self, image1, image2, flow, motion2)
        if self.config.augment:
            image1, image2 = augment_pair(self, image1, image2)
        valid = torch.isfinite(flow).all(dim=1, keepdim=True)
        return {
            "image1": image1.contiguous(),
            "image2": image2.contiguous(),
            "flow": flow.contiguous(),
            "occlusion": occlusion,
            "valid": valid,
        }
