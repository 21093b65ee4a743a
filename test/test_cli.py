import numpy as np
import pytest

from lfn_ros.cli import main
from lfn_ros.io import read_flo, read_image, write_image


@pytest.fixture()
def frames(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(64, 120, 3), dtype=np.uint8)
    folder = tmp_path / "frames"
    for i in range(3):
        write_image(folder / f"frame_{i}.png", np.ascontiguousarray(base[:, 2 * i: 2 * i + 96]))
    return folder


def test_infer_pair_writes_flow_colour_and_occlusion(frames, tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["infer", str(frames / "frame_0.png"), str(frames / "frame_1.png"), "--weights", "",
                 "--out", str(out / "f.flo"), "--color", str(out / "c.png"), "--occlusion", str(out / "occ.png")])
    assert code == 0
    assert read_flo(out / "f.flo").shape == (64, 96, 2)
    assert read_image(out / "c.png").shape == (64, 96, 3)
    assert read_image(out / "occ.png").shape == (64, 96, 3)
    assert "mean |flow|" in capsys.readouterr().out


def test_infer_folder_writes_every_consecutive_pair(frames, tmp_path):
    out = tmp_path / "dir"
    assert main(["infer", str(frames), "--out", str(out), "--weights", ""]) == 0
    assert sorted(p.name for p in out.glob("*.flo")) == ["frame_0.flo", "frame_1.flo"]
    assert len(list(out.glob("*_flow.png"))) == 2 and len(list(out.glob("*_occlusion.png"))) == 2


def test_infer_errors_are_clear(frames, tmp_path, capsys):
    assert main(["infer", str(frames / "missing.png"), str(frames / "frame_1.png"), "--color", "x.png"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["infer", str(frames)]) == 2
    assert "needs --out" in capsys.readouterr().err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert main(["infer", str(frames / "frame_0.png"), str(frames / "frame_1.png"), "--color",
                 str(tmp_path / "c.png"), "--weights", str(broken)]) == 2
    assert "broken.pt" in capsys.readouterr().err
