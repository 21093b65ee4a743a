"""Synthetic training pairs: shapes, determinism, and consistency with their own ground truth."""

from pathlib import Path

import pytest
import torch

from lfn_ros.data.synthetic import SyntheticConfig, SyntheticFlow, bundled_texture_files
from lfn_ros.data.synthetic_samples import write_samples
from lfn_ros.ops.warp import warp

H, W = 64, 96


@pytest.fixture(scope="module")
def plain():
    """A batch without photometric augmentation or blur (geometry only)."""
    return SyntheticFlow(96, 128, seed=3, config=SyntheticConfig(augment=False)).sample(8)


def test_shapes_dtypes_ranges():
    data = SyntheticFlow(H, W, seed=0).sample(3)
    assert data["image1"].shape == (3, 3, H, W) and data["image1"].dtype == torch.float32
    assert data["image2"].shape == (3, 3, H, W) and data["image2"].dtype == torch.float32
    assert data["flow"].shape == (3, 2, H, W) and data["flow"].dtype == torch.float32
    assert data["occlusion"].shape == (3, 1, H, W) and data["occlusion"].dtype == torch.bool
    assert data["valid"].shape == (3, 1, H, W) and data["valid"].dtype == torch.bool
    for key in ("image1", "image2"):
        assert float(data[key].min()) >= 0.0 and float(data[key].max()) <= 1.0
    assert torch.isfinite(data["flow"]).all()
    assert data["valid"].all()
    assert data["flow"].abs().amax() > 0  # something moves


def test_warping_frame2_by_the_flow_reproduces_frame1(plain):
    warped, inside = warp(plain["image2"], plain["flow"], return_mask=True)
    error = (warped - plain["image1"]).abs().mean(1, keepdim=True)
    matched = ~plain["occlusion"]
    assert (matched <= inside).all(), "a non-occluded pixel must land inside frame 2"
    good = float(error[matched].mean())
    assert good < 0.01, good
    # The flow is what makes it small: off by one pixel, the error is several times larger.
    shifted = warp(plain["image2"], plain["flow"] + 1.0)
    off = float((shifted - plain["image1"]).abs().mean(1, keepdim=True)[matched].mean())
    assert off > 3 * good, (good, off)
    # Occluded pixels show something else in frame 2.
    assert float(error[plain["occlusion"]].mean()) > 5 * good


def test_occlusion_fraction_is_plausible_and_covers_pixels_leaving_the_frame(plain):
    fraction = float(plain["occlusion"].float().mean())
    assert 0.005 < fraction < 0.6, fraction
    flow = plain["flow"]
    xs = torch.arange(128).view(1, 1, 128) + flow[:, 0:1]
    ys = torch.arange(96).view(1, 96, 1) + flow[:, 1:2]
    leaving = (xs < 0) | (xs > 127) | (ys < 0) | (ys > 95)
    assert plain["occlusion"][leaving].all()


def test_motion_maps_are_exact_inverses():
    gen = SyntheticFlow(H, W, seed=5, config=SyntheticConfig(nonrigid_prob=1.0, nonrigid_amplitude=8.0))
    p = gen._scene(4)
    L = p["shape"].shape[1]
    x = gen._gx.view(1, 1, H, W).expand(4, L, H, W)
    y = gen._gy.view(1, 1, H, W).expand(4, L, H, W)
    x2, y2 = gen.forward_map(p, x, y)
    assert (x2 - x).abs().amax() > 0.5  # it does move
    bx, by = gen.inverse_map(p, x2, y2)
    assert torch.allclose(bx, x, atol=2e-3) and torch.allclose(by, y, atol=2e-3)


def test_same_seed_same_samples_different_seed_different():
    a = SyntheticFlow(H, W, seed=11).sample(2)
    b = SyntheticFlow(H, W, seed=11).sample(2)
    c = SyntheticFlow(H, W, seed=12).sample(2)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["image1"], c["image1"])
    assert not torch.equal(a["flow"], c["flow"])


def test_generator_state_resumes_the_stream():
    gen = SyntheticFlow(H, W, seed=2)
    gen.sample(2)
    state = gen.get_state()
    expected = gen.sample(2)
    other = SyntheticFlow(H, W, seed=999)
    other.set_state(state)
    again = other.sample(2)
    for key in expected:
        assert torch.equal(expected[key], again[key]), key


def test_augmentation_changes_photometry_not_geometry():
    plain_cfg = SyntheticConfig(augment=False)
    aug_cfg = SyntheticConfig(augment=True, blur_prob=1.0)
    a = SyntheticFlow(H, W, seed=4, config=plain_cfg).sample(2)
    b = SyntheticFlow(H, W, seed=4, config=aug_cfg).sample(2)
    assert torch.equal(a["flow"], b["flow"]) and torch.equal(a["occlusion"], b["occlusion"])
    assert not torch.allclose(a["image1"], b["image1"])
    assert float(b["image1"].min()) >= 0 and float(b["image1"].max()) <= 1


def test_textures_are_bundled_with_scikit_image():
    import skimage

    files = bundled_texture_files()
    assert len(files) >= 10
    package = Path(skimage.__file__).resolve().parent
    assert all(package in f.parents and f.is_file() for f in files)
    assert not any("motorcycle" in f.name for f in files)  # Middlebury imagery stays out


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        SyntheticFlow(4, 4)
    with pytest.raises(ValueError):
        SyntheticFlow(H, W).sample(0)


def test_write_samples(tmp_path):
    paths = write_samples(tmp_path, count=2, height=64, width=96, seed=1)
    names = {p.name for p in paths}
    assert {"sample_0_image1.png", "sample_1_flow.png", "sample_1_occlusion.png", "samples.png"} <= names
    assert all(p.stat().st_size > 0 for p in paths)


# --------------------------------------------------------------------------- round 3's data

def _fast_only(**overrides):
    values = dict(augment=False, motion_blur_prob=0.0, fast_object_prob=1.0, layers=(2, 3))
    return SyntheticConfig.round3(**{**values, **overrides})


def test_fast_objects_move_far_against_the_background_and_stay_exact():
    data = SyntheticFlow(192, 256, seed=8, config=_fast_only()).sample(6)
    flow, occlusion = data["flow"], data["occlusion"]
    # The background moves a few pixels; a fast object 40 px or more (up to 0.6 of the width).
    magnitude = flow.norm(dim=1)
    fast_share = (magnitude > 40).float().mean(dim=(1, 2))
    assert (fast_share > 0.005).all(), fast_share
    assert float(magnitude.max()) <= 0.6 * 256 + 40
    # Exact ground truth: frame 2 warped back by the flow gives frame 1 on matched pixels,
    # the fast pixels included.
    warped = warp(data["image2"], flow)
    error = (warped - data["image1"]).abs().mean(1, keepdim=True)
    fast_matched = (magnitude.unsqueeze(1) > 40) & ~occlusion
    assert fast_matched.any() and float(error[fast_matched].mean()) < 0.02
    assert float(error[~occlusion].mean()) < 0.01


def test_the_default_configuration_draws_nothing_for_the_new_effects():
    """Fast objects and motion blur off draw no numbers: round 2's samples stay as they were."""
    a = SyntheticFlow(H, W, seed=5).sample(2)
    b = SyntheticFlow(H, W, seed=5, config=SyntheticConfig(fast_object_prob=0.0, motion_blur_prob=0.0)).sample(2)
    c = SyntheticFlow(H, W, seed=5, config=SyntheticConfig(fast_object_prob=1.0)).sample(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["flow"], c["flow"])


def test_motion_blur_smears_along_the_motion_and_keeps_the_geometry():
    sharp_cfg = _fast_only()
    blur_cfg = _fast_only(motion_blur_prob=1.0, motion_blur_exposure=(0.5, 0.5))
    sharp = SyntheticFlow(192, 256, seed=9, config=sharp_cfg).sample(2)
    blurred = SyntheticFlow(192, 256, seed=9, config=blur_cfg).sample(2)
    assert torch.equal(sharp["flow"], blurred["flow"]) and torch.equal(sharp["occlusion"], blurred["occlusion"])
    change = (blurred["image1"] - sharp["image1"]).abs().mean(1)
    moving = sharp["flow"].norm(dim=1)
    # Pixels that hardly move keep their value; fast ones are smeared.
    assert float(change[moving > 40].mean()) > 3 * float(change[moving < 5].mean())
    # Zero exposure is the identity.
    from lfn_ros.data.photometric import motion_blur
    image = sharp["image1"]
    assert torch.allclose(motion_blur(image, sharp["flow"], torch.zeros(2), 9), image, atol=1e-5)
