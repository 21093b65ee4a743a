"""Dataset readers on the real evaluation files (../shared/data, see its MANIFEST.md) and on
small layouts written here (official FlyingChairs / KITTI layouts, missing files)."""

import cv2
import numpy as np
import pytest

from lfn_ros.data.datasets import (
    DatasetError,
    FlowSample,
    SampleLoader,
    discover,
    flying_chairs_occ_samples,
    flying_chairs_samples,
    kitti_samples,
    middlebury_samples,
    read_mask,
    sintel_samples,
)
from lfn_ros.io import read_flo, read_image, write_flo, write_image, write_kitti_flow

# Pair counts that follow from the MANIFEST: alley_1 has frames 1-4 in both passes and flow for
# 1..5 (pairs 1-2, 2-3, 3-4); alley_2 (clean only) and cave_2 have flow for frame 2 only.
EXPECTED_PAIRS = {
    "Sintel-clean": 5,
    "Sintel-final": 4,
    "FlyingChairs": 9,
    "Middlebury": 2,  # Dimetrodon, RubberWhale
    "KITTI2012-noc": 1,
    "KITTI2012-occ": 1,
    "KITTI2015-noc": 1,  # 000010, official layout (training/image_2, flow_noc, flow_occ)
    "KITTI2015-occ": 1,
}
EXPECTED_SIZE = {  # (H, W)
    "Sintel-clean": (436, 1024),
    "Sintel-final": (436, 1024),
    "FlyingChairs": (384, 512),
    "Middlebury": (388, 584),
    "KITTI2012-noc": (376, 1241),
    "KITTI2012-occ": (376, 1241),
    "KITTI2015-noc": (375, 1242),
    "KITTI2015-occ": (375, 1242),
}


@pytest.fixture(scope="module")
def found(shared_data):
    return discover(shared_data)


def _photometric_errors(sample: FlowSample):
    """Mean |I1 - I2(x + flow)| and mean |I1 - I2(x)| over valid, non-occluded pixels that stay
    inside the frame: a correct forward flow makes the first much smaller."""
    h, w = sample.size
    x, y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(sample.image2.astype(np.float32), x + sample.flow[..., 0], y + sample.flow[..., 1],
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    mask = sample.valid & np.isfinite(warped).all(axis=2)
    if sample.occlusion is not None:
        mask &= ~sample.occlusion
    image1 = sample.image1.astype(np.float32)
    return (np.abs(warped - image1)[mask].mean(),
            np.abs(sample.image2.astype(np.float32) - image1)[mask].mean())


def test_discover_finds_every_dataset_with_manifest_pair_counts(found):
    assert {name: len(loaders) for name, loaders in found.items()} == EXPECTED_PAIRS
    assert list(found) == list(EXPECTED_PAIRS)  # documented order
    assert [s.name for s in found["Sintel-clean"]] == [
        "alley_1/frame_0001", "alley_1/frame_0002", "alley_1/frame_0003", "alley_2/frame_0002", "cave_2/frame_0002"]
    assert [s.name for s in found["Sintel-final"]] == [
        "alley_1/frame_0001", "alley_1/frame_0002", "alley_1/frame_0003", "cave_2/frame_0002"]
    for name, loaders in found.items():
        for loader in loaders:
            assert isinstance(loader, SampleLoader) and loader.dataset == name  # lazy: nothing read yet


@pytest.mark.parametrize("dataset", list(EXPECTED_PAIRS))
def test_first_sample_sizes_types_and_flow_direction(found, dataset):
    sample = found[dataset][0]()
    assert isinstance(sample, FlowSample) and sample.dataset == dataset
    size = EXPECTED_SIZE[dataset]
    assert sample.image1.shape == sample.image2.shape == size + (3,)
    assert sample.image1.dtype == sample.image2.dtype == np.uint8
    assert sample.flow.shape == size + (2,) and sample.flow.dtype == np.float32
    assert sample.valid.shape == size and sample.valid.dtype == bool and sample.valid.any()
    assert np.isfinite(sample.flow).all() and (sample.flow[~sample.valid] == 0).all()
    # The flow is image1 -> image2: warping image2 back with it explains image1.
    warped, unwarped = _photometric_errors(sample)
    assert warped < 0.6 * unwarped, (warped, unwarped)


def test_sintel_files_masks_and_frame_pairing(shared_data, found):
    by_name = {s.name: s for s in found["Sintel-clean"]}
    first = by_name["alley_1/frame_0001"]()
    np.testing.assert_array_equal(first.image1, read_image(shared_data / "Sintel/clean/alley_1/frame_0001.png"))
    np.testing.assert_array_equal(first.image2, read_image(shared_data / "Sintel/clean/alley_1/frame_0002.png"))
    np.testing.assert_array_equal(first.flow, read_flo(shared_data / "Sintel/flow/alley_1/frame_0001.flo"))
    assert first.occlusion is None and first.valid.all()  # masks exist for frame 2 only
    for scene in ("alley_1", "alley_2", "cave_2"):
        sample = by_name[f"{scene}/frame_0002"]()
        invalid = read_mask(shared_data / f"Sintel/invalid/{scene}/frame_0002.png")
        occluded = read_mask(shared_data / f"Sintel/occlusions/{scene}/frame_0002.png")
        assert invalid.any() and occluded.any()
        np.testing.assert_array_equal(sample.valid, ~invalid)
        np.testing.assert_array_equal(sample.occlusion, occluded)
        assert 0.001 < sample.occlusion.mean() < 0.2
    final = {s.name: s for s in found["Sintel-final"]}["cave_2/frame_0002"]()
    assert final.occlusion is not None
    assert not np.array_equal(final.image1, found["Sintel-clean"][-1]().image1)  # another pass


def test_middlebury_unknown_pixels_are_invalid(shared_data, found):
    sample = {s.name: s for s in found["Middlebury"]}["RubberWhale"]()
    raw = read_flo(shared_data / "Middlebury/RubberWhale/flow10.flo")
    unknown = (np.abs(raw) > 1e9).any(axis=2)
    assert unknown.sum() == 3622  # RubberWhale's unknown pixels
    np.testing.assert_array_equal(sample.valid, ~unknown)
    assert (sample.flow[unknown] == 0).all()
    assert np.abs(sample.flow[sample.valid]).max() < 50
    assert sample.occlusion is None


def test_kitti_noc_is_subset_of_occ_and_occlusion_is_their_difference(found):
    noc = found["KITTI2012-noc"][0]()
    occ = found["KITTI2012-occ"][0]()
    assert noc.name == occ.name == "000045"
    assert found["KITTI2012-noc"][0].key == found["KITTI2012-occ"][0].key  # same images
    assert not (noc.valid & ~occ.valid).any()  # noc is a subset of occ
    assert occ.valid.sum() > noc.valid.sum() > 0.15 * noc.valid.size
    both = noc.valid & occ.valid
    # The two files agree on shared pixels up to small re-interpolation differences (measured:
    # 1.1 % of pixels differ, by at most 0.3 px).
    diff = np.abs(noc.flow[both] - occ.flow[both]).max(axis=1)
    assert (diff <= 1 / 64).mean() > 0.97 and diff.max() < 0.5
    for sample in (noc, occ):
        np.testing.assert_array_equal(sample.occlusion, occ.valid & ~noc.valid)
        np.testing.assert_array_equal(sample.occlusion_valid, occ.valid)
    assert occ.occlusion.any()


def test_flying_chairs_flat_and_occ_layouts_on_mmflow_crops(shared_data):
    folder = shared_data / "mmflow_testdata"
    flat = flying_chairs_samples(folder)
    assert [s.name for s in flat] == ["00001"]
    sample = flat[0]()
    assert sample.image1.shape == (50, 50, 3) and sample.flow.shape == (50, 50, 2) and sample.valid.all()
    occ = flying_chairs_occ_samples(folder)
    assert [s.name for s in occ] == ["0000000"]
    sample = occ[0]()
    assert sample.occlusion.shape == (50, 50) and 0 < sample.occlusion.mean() < 0.5
    assert "mmflow_testdata" not in str(discover(shared_data))  # test crops are not a benchmark


# ----------------------------------------------------------------- layouts written here

def _pair(rng, h=24, w=32):
    image1 = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    image2 = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    flow = rng.normal(size=(h, w, 2)).astype(np.float32)
    return image1, image2, flow


def test_official_layouts_and_missing_files(tmp_path):
    rng = np.random.default_rng(0)
    i1, i2, flow = _pair(rng)
    # Sintel: frames 1-3, flow only for frame 2 and frame 3 (no frame 4 -> no pair 3-4).
    for n in (1, 2, 3):
        write_image(tmp_path / f"Sintel/training/final/s/frame_{n:04d}.png", i1 if n == 2 else i2)
    write_flo(tmp_path / "Sintel/training/flow/s/frame_0002.flo", flow)
    write_flo(tmp_path / "Sintel/training/flow/s/frame_0003.flo", flow)
    sintel = sintel_samples(tmp_path / "Sintel", "final")
    assert [s.name for s in sintel] == ["s/frame_0002"]
    sample = sintel[0]()
    np.testing.assert_array_equal(sample.image1, i1)
    assert sample.occlusion is None and sample.valid.all()
    # FlyingChairs_release/data flat layout.
    write_image(tmp_path / "Chairs/data/00007_img1.ppm", i1)
    write_image(tmp_path / "Chairs/data/00007_img2.ppm", i2)
    write_flo(tmp_path / "Chairs/data/00007_flow.flo", flow)
    write_image(tmp_path / "Chairs/data/00008_img1.ppm", i1)  # incomplete pair: ignored
    chairs = flying_chairs_samples(tmp_path / "Chairs")
    assert [s.name for s in chairs] == ["00007"]
    np.testing.assert_array_equal(chairs[0]().flow, flow)
    # Middlebury official: other-data + other-gt-flow, with an unknown pixel and a NaN.
    bad = flow.copy()
    bad[0, 0, 0] = 1.7e9
    bad[1, 1, 1] = np.nan
    write_image(tmp_path / "Mb/other-data/Venus/frame10.png", i1)
    write_image(tmp_path / "Mb/other-data/Venus/frame11.png", i2)
    write_flo(tmp_path / "Mb/other-gt-flow/Venus/flow10.flo", bad)
    mb = middlebury_samples(tmp_path / "Mb")[0]()
    assert mb.name == "Venus" and (~mb.valid).sum() == 2 and not mb.valid[0, 0] and not mb.valid[1, 1]
    # KITTI 2015 official layout: training/image_2 + flow_noc / flow_occ.
    valid_occ = np.ones(flow.shape[:2], dtype=bool)
    valid_noc = valid_occ.copy()
    valid_noc[:, -4:] = False
    write_image(tmp_path / "K/training/image_2/000003_10.png", i1)
    write_image(tmp_path / "K/training/image_2/000003_11.png", i2)
    write_kitti_flow(tmp_path / "K/training/flow_occ/000003_10.png", flow, valid_occ)
    write_kitti_flow(tmp_path / "K/training/flow_noc/000003_10.png", flow, valid_noc)
    kitti = kitti_samples(tmp_path / "K", gt="noc")[0]()
    assert kitti.dataset == "K-noc" and kitti.name == "000003"
    np.testing.assert_array_equal(kitti.valid, valid_noc)
    np.testing.assert_array_equal(kitti.occlusion, valid_occ & ~valid_noc)
    np.testing.assert_allclose(kitti.flow[valid_noc], flow[valid_noc], atol=1 / 128)
    with pytest.raises(ValueError):
        kitti_samples(tmp_path / "K", gt="all")


def test_size_mismatch_is_reported(tmp_path):
    rng = np.random.default_rng(1)
    i1, i2, flow = _pair(rng)
    write_image(tmp_path / "Middlebury/X/frame10.png", i1)
    write_image(tmp_path / "Middlebury/X/frame11.png", i2)
    write_flo(tmp_path / "Middlebury/X/flow10.flo", flow[:-2])
    found = discover(tmp_path)
    assert list(found) == ["Middlebury"]
    with pytest.raises(DatasetError, match="differ in size"):
        found["Middlebury"][0]()


def test_discover_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError):
        discover(tmp_path / "nope")
    assert discover(tmp_path) == {}
