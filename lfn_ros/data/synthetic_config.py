"""Parameters of the synthetic training data (lfn_ros.data.synthetic)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

@dataclass
class SyntheticConfig:
    """Parameters of :class:`SyntheticFlow`. Ranges are ``(low, high)``, drawn uniformly unless
    noted; lengths are pixels of the generated frames, angles degrees.

    Scene
        layers: number of foreground layers per sample (inclusive range); a background always.
        shape_probs: probabilities of polygon (3..8 sides, convex), ellipse, blob (a circle
            whose radius is modulated by harmonics 2..4).
        radius: mean shape radius as a fraction of min(H, W).
        aspect: anisotropy of a shape (log-uniform).
        blob_amplitude: total amplitude of a blob's radial harmonics (relative radius).
        edge_softness: width of the anti-aliased alpha edge, pixels.
        texels_per_pixel: texture magnification (log-uniform); kept <= ~1.3 so textures are
            not minified far (which would alias differently in the two frames).
        photo_prob: probability a layer is textured with a bundled photograph rather than a
            procedural pattern (value noise, stripes, checker).
        texture_size: side of the square texture images, texels.
        shape_resolution: side of the raster on which each shape's signed distance is
            tabulated (the shape is its bilinear interpolation; corners round off over about
            2 * radius / shape_resolution pixels).

    Motion (frame 1 -> frame 2)
        bg_translation_width, fg_translation_width: maximum translation of the background
            (camera) and of a foreground layer, as a fraction of the frame width; magnitude =
            max * u ** 1.5 (u uniform), so small motions are common, direction uniform.
        rotation, scale, anisotropy, shear: maxima of the background's and a foreground
            layer's rotation (deg), log-scale, log-anisotropy and shear, drawn in [-max, max]
            as ``max * sign(v) * |v| ** affine_power`` (v uniform in [-1, 1]; 1 is uniform,
            2 makes small deformations common while keeping the full range).
        large_motion_prob: probability that a layer (background included) instead translates
            by ``large_motion`` times the frame width: the heavy tail of the displacement
            distribution (issue 8; docs/training.md compares it with published statistics).
        large_motion_dist: how the tail is drawn from the ``large_motion`` range:
            ``loguniform`` (equal mass per octave, the default) or ``uniform`` (round 1).
        nonrigid_prob, nonrigid_amplitude, nonrigid_wavelength: probability that a layer
            deforms smoothly, the maximum amplitude (pixels) of each coupling shear and its
            wavelength as a fraction of max(H, W). The slope amplitude * 2 pi / wavelength is
            capped at ``nonrigid_max_slope``.
        motion_scale: multiplies every length of the motion (translation, large motion, non-rigid
            amplitude); raise it when training at a larger resolution.

    Fast objects (issue 15: large motion of objects *against* their background)
        fast_object_prob: probability that a sample has fast objects: its ``fast_objects``
            front-most foreground layers (inclusive range) move by ``fast_motion`` pixels
            relative to the background (log-uniform; capped at ``fast_motion_max_width`` of the
            frame width so start and end fit in the frame), are drawn with ``fast_radius``
            (fraction of min(H, W)) and are placed so that the middle of their path lies in the
            central 70 % of the frame. 0 turns them off and draws no extra numbers (earlier
            configurations give the same samples as before).

    Final-pass effects
        motion_blur_prob, motion_blur_exposure, motion_blur_taps: probability that a sample is
            rendered with motion blur, the shutter's open fraction of the frame interval
            (uniform range), and the taps along each pixel's own motion (frame 1: its flow;
            frame 2: the motion of the layer visible there). The flow is that of the frame
            times, as in Sintel's final pass.

    Photometry (``augment=False`` disables all of it and the blur)
        brightness: additive offset in [-b, b]; contrast: factor (log-uniform); gamma: exponent
            (log-uniform); color: per-channel gain in [1 - c, 1 + c]; noise: Gaussian sigma
            range (per frame); frame_delta: how far frame 2's brightness / contrast / gamma /
            gain may differ from frame 1's (each as its own +- range).
        blur_prob, blur_sigma: probability of a Gaussian blur of both frames and its sigma
            (pixels; frame 2's sigma differs by up to 10 %).
    """

    layers: tuple = (2, 7)
    shape_probs: tuple = (0.35, 0.3, 0.35)
    radius: tuple = (0.06, 0.35)
    aspect: tuple = (0.5, 2.0)
    blob_amplitude: tuple = (0.1, 0.45)
    edge_softness: float = 1.0
    texels_per_pixel: tuple = (0.45, 1.3)
    photo_prob: float = 0.55
    texture_size: int = 256
    shape_resolution: int = 96

    bg_translation_width: float = 0.03
    bg_rotation: float = 4.0
    bg_scale: float = 0.06
    bg_anisotropy: float = 0.02
    bg_shear: float = 0.03
    fg_translation_width: float = 0.08
    fg_rotation: float = 17.0
    fg_scale: float = 0.15
    fg_anisotropy: float = 0.08
    fg_shear: float = 0.08
    large_motion_prob: float = 0.3
    large_motion: tuple = (0.04, 0.35)
    large_motion_dist: str = "loguniform"
    affine_power: float = 2.0
    nonrigid_prob: float = 0.5
    nonrigid_amplitude: float = 4.0
    nonrigid_wavelength: tuple = (0.3, 1.5)
    nonrigid_max_slope: float = 0.3
    motion_scale: float = 1.0

    fast_object_prob: float = 0.0
    fast_objects: tuple = (1, 2)
    fast_motion: tuple = (40.0, 250.0)
    fast_motion_max_width: float = 0.6
    fast_radius: tuple = (0.05, 0.18)

    motion_blur_prob: float = 0.0
    motion_blur_exposure: tuple = (0.2, 0.8)
    motion_blur_taps: int = 9

    augment: bool = True
    brightness: float = 0.1
    contrast: tuple = (0.7, 1.35)
    gamma: tuple = (0.75, 1.35)
    color: float = 0.12
    noise: tuple = (0.0, 0.025)
    frame_delta: dict = field(default_factory=lambda: {"brightness": 0.02, "contrast": 0.03, "gamma": 0.03, "color": 0.02})
    blur_prob: float = 0.25
    blur_sigma: tuple = (0.3, 1.4)

    @classmethod
    def round1(cls, **overrides) -> "SyntheticConfig":
        """The motion distribution of the round-1 weights (trained at 256 px wide: translations
        up to 12 and 28 px, 8 % of layers uniform in 12-30 % of the width), for comparisons."""
        values = dict(bg_translation_width=12 / 256, fg_translation_width=28 / 256, large_motion_prob=0.08,
                      large_motion=(0.12, 0.3), large_motion_dist="uniform", affine_power=1.0)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def round3(cls, **overrides) -> "SyntheticConfig":
        """Round 3's data (issue 15): the heavy-tailed motion of round 2 plus fast objects in half
        of the samples and motion blur in a third, a little more brightness change between the
        frames. Why these ranges: docs/training.md ("Round 3's data")."""
        values = dict(fast_object_prob=0.5, motion_blur_prob=0.35,
                      frame_delta={"brightness": 0.04, "contrast": 0.05, "gamma": 0.04, "color": 0.03})
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain-Python copy (for the weights card)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


#: The named synthetic data sets (``lfn-ros train --motion NAME``, the validation sets): round 2's
#: heavy-tailed motion, round 1's (for comparisons), round 3's (heavy + fast objects + motion blur).
PRESETS = {"heavy": SyntheticConfig, "round1": SyntheticConfig.round1, "round3": SyntheticConfig.round3}
