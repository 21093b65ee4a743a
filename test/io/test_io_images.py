"""lfn_ros.io.images: read/write image files as RGB, list frames in natural order."""

import cv2
import numpy as np
import pytest

from lfn_ros.io import ImageFileError, list_frames, read_image, write_image


@pytest.mark.parametrize("name", [
    "FlyingChairs/flownet2_0000000/img0.ppm",
    "Sintel/clean/alley_1/frame_0001.png",
    "Middlebury/RubberWhale/frame10.png",
    "KITTI2012/000045/colored_0_10.png",
    "mmflow_testdata/00001_img1.ppm",
])
def test_read_colour_files_as_rgb(shared_data, name):
    path = shared_data / name
    rgb = read_image(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape == bgr.shape
    h, w = rgb.shape[:2]
    for y, x in [(0, 0), (h // 2, w // 3), (h - 1, w - 1)]:
        assert rgb[y, x].tolist() == bgr[y, x, ::-1].tolist()
    np.testing.assert_array_equal(rgb, bgr[:, :, ::-1])


def test_sizes_of_known_files(shared_data):
    assert read_image(shared_data / "FlyingChairs/flownet2_0000003/img1.ppm").shape == (384, 512, 3)
    assert read_image(shared_data / "Sintel/final/cave_2/frame_0004.png").shape == (436, 1024, 3)
    assert read_image(shared_data / "Middlebury/RubberWhale/frame11.png").shape == (388, 584, 3)


def test_grey_expanded(shared_data):
    path = shared_data / "KITTI2012/000045/image_0_10.png"
    grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert grey.ndim == 2
    rgb = read_image(path)
    assert rgb.shape == grey.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], grey)


@pytest.mark.parametrize("ext", [".png", ".ppm", ".bmp"])
def test_write_read_round_trip(tmp_path, ext):
    rgb = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    path = tmp_path / "a" / "b" / f"img{ext}"
    write_image(path, rgb)
    np.testing.assert_array_equal(read_image(path), rgb)
    # Stored as RGB: OpenCV sees the channels reversed.
    np.testing.assert_array_equal(cv2.imread(str(path))[:, :, ::-1], rgb)


def test_write_grey_and_rgba(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_image(tmp_path / "g.png", grey)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.repeat(grey[..., None], 3, 2))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    write_image(tmp_path / "a.png", rgba)
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [200, 0, 0]


def test_jpeg(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 250
    write_image(tmp_path / "r.jpg", rgb)
    back = read_image(tmp_path / "r.jpg")
    assert np.abs(back.astype(int) - rgb).max() <= 6


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        read_image(tmp_path / "nothing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageFileError, match="empty.png"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(ImageFileError, match="junk.jpg"):
        read_image(tmp_path / "junk.jpg")
    with pytest.raises(ValueError, match=r"\(4, 4, 2\)"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageFileError, match="xyz"):
        write_image(tmp_path / "x.xyz", np.zeros((4, 4, 3), np.uint8))


def test_list_frames_natural_order(tmp_path):
    names = ["frame_10.png", "frame_2.png", "frame_1.PNG", "b.jpg", "a.ppm", "x.txt", ".hidden.png",
             "c.jpeg", "frame_100.png"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    frames = list_frames(tmp_path)
    assert [p.name for p in frames] == ["a.ppm", "b.jpg", "c.jpeg", "frame_1.PNG", "frame_2.png",
                                        "frame_10.png", "frame_100.png"]
    with pytest.raises(FileNotFoundError):
        list_frames(tmp_path / "missing")
    with pytest.raises(NotADirectoryError):
        list_frames(tmp_path / "a.ppm")


def test_list_real_frames(shared_data):
    frames = list_frames(shared_data / "Sintel" / "clean" / "alley_1")
    assert [p.name for p in frames] == [f"frame_{i:04d}.png" for i in range(1, 5)]
