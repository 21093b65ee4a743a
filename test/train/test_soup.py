"""`lfn-ros average-weights` (lfn_ros.train.soup): the uniform average of checkpoints of one network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lfn_ros.cli import main as cli_main
from lfn_ros.model.liteflownet import LiteFlowNet
from lfn_ros.model.weights import WeightsError, load_model, read_checkpoint, save_checkpoint
from lfn_ros.train.soup import average_checkpoints


def saved(tmp_path, name: str, seed: int, card: dict | None = None):
    torch.manual_seed(seed)
    return save_checkpoint(tmp_path / name, LiteFlowNet(), card={"steps": 10, "weights": f"run {seed}", **(card or {})})


def test_the_average_is_the_mean_of_each_tensor_and_names_its_sources(tmp_path):
    a, b, c = (saved(tmp_path, f"{n}.pt", seed) for n, seed in (("a", 1), ("b", 2), ("c", 3)))
    out = average_checkpoints([a, b, c], tmp_path / "soup.pt")
    states = [read_checkpoint(p)["state_dict"] for p in (a, b, c)]
    soup = read_checkpoint(out)
    for name, tensor in soup["state_dict"].items():
        expected = torch.stack([s[name].float() for s in states]).mean(0)
        assert tensor.dtype == torch.float16 and torch.allclose(tensor.float(), expected, atol=2e-3, rtol=1e-3), name
    card = soup["card"]
    assert card["weights"].startswith("uniform average of 3") and [Path(s["file"]).name for s in card["averaged_from"]] == ["a.pt", "b.pt", "c.pt"]
    assert card["averaged_from"][1]["weights"] == "run 2" and len(card["averaged_from"][0]["sha256"]) == 64
    model, loaded = load_model(out)  # loads as any checkpoint does, and counts as trained
    assert loaded["trained"] and sum(p.numel() for p in model.parameters()) == 5_381_969


def test_one_checkpoint_another_network_or_a_corrupt_file_is_refused(tmp_path, capsys):
    a = saved(tmp_path, "a.pt", 1)
    with pytest.raises(WeightsError, match="at least two"):
        average_checkpoints([a], tmp_path / "x.pt")
    payload = torch.load(a, weights_only=True)
    payload["state_dict"]["netc.extra"] = torch.zeros(3)  # a tensor the first network does not have
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    with pytest.raises(WeightsError):
        average_checkpoints([a, other], tmp_path / "x.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(a.read_bytes()[:1000])
    assert cli_main(["average-weights", str(a), str(broken), "--out", str(tmp_path / "x.pt")]) == 2
    assert "broken.pt" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
    assert cli_main(["average-weights", str(a), str(saved(tmp_path, "b.pt", 2)), "--out", str(tmp_path / "ok.pt")]) == 0
    assert (tmp_path / "ok.pt").is_file()
