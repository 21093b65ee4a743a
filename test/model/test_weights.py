from collections import OrderedDict

import pytest
import torch

from lfn_ros.model.liteflownet import LiteFlowNet
from lfn_ros.model.weights import (
    UntrainedWarning,
    WeightsError,
    apply_state_dict,
    file_sha256,
    load_model,
    resolve_finest_level,
    read_checkpoint,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return LiteFlowNet().eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("w") / "ckpt.pt"
    save_checkpoint(path, model, card={"name": "unit", "recommended_finest_level": 3, "metrics": {"epe": 1.5}, "steps": 10})
    return path


def test_round_trip_reproduces_parameters_and_card(model, saved):
    loaded, card = load_model(saved, finest_level=2)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert card["name"] == "unit" and card["trained"] and card["metrics"]["epe"] == 1.5
    assert card["sha256"] == file_sha256(saved) and card["path"] == str(saved)


def test_trained_comes_from_the_checkpoints_own_record(model, tmp_path):
    for card, expected in (({}, False), ({"steps": 0}, False), ({"steps": 3}, True), ({"steps": 3, "trained": False}, False)):
        path = save_checkpoint(tmp_path / "c.pt", model, card=card)
        assert load_model(path)[1]["trained"] is expected, card


def test_a_missing_shipped_file_is_an_error_unless_untrained_is_asked_for(monkeypatch, tmp_path):
    import lfn_ros.model.weights as weights

    monkeypatch.setattr(weights, "default_weights", lambda: None)
    with pytest.raises(WeightsError, match="missing from this installation"):
        load_model("default")
    with pytest.warns(UntrainedWarning):
        assert load_model("")[1]["trained"] is False


def test_finest_level_is_resolved_once_and_checked(saved):
    assert resolve_finest_level(None, {"recommended_finest_level": 3}) == 3
    assert resolve_finest_level(0, {}) == 2 and resolve_finest_level(4, {"recommended_finest_level": 3}) == 4
    with pytest.raises(WeightsError, match="not one of"):
        resolve_finest_level(1, {})


def test_card_recommends_the_finest_level(saved):
    assert load_model(saved)[0].finest_level == 3
    assert load_model(saved, finest_level=2)[0].finest_level == 2


def test_half_precision_copy_is_half_the_size_and_close(model, tmp_path, saved):
    path = save_checkpoint(tmp_path / "half.pt", model, half=True)
    assert path.stat().st_size < 0.6 * saved.stat().st_size
    loaded, _ = load_model(path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(WeightsError, match="nope.pt does not exist"):
        load_model(tmp_path / "nope.pt")


def test_truncated_file_is_refused(saved, tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(WeightsError, match="cut.pt could not be read"):
        read_checkpoint(cut)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        read_checkpoint(empty)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "lfn_ros-checkpoint", "payload": _Evil()}, path)
    with pytest.raises(WeightsError, match="containing code"):
        read_checkpoint(path)


def test_wrong_architecture_is_refused(tmp_path, model):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"conv.weight": torch.zeros(3)}}, path)
    with pytest.raises(WeightsError, match="neither an lfn_ros checkpoint nor a published LiteFlowNet"):
        read_checkpoint(path)
    state = dict(model.state_dict())
    state.pop("netc.level1.0.weight")
    state["netc.level2.0.0.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="1 missing.*wrong shape"):
        apply_state_dict(LiteFlowNet(), state)


def test_no_weights_warns_loudly():
    with pytest.warns(UntrainedWarning, match="UNTRAINED"):
        _, card = load_model(None)
    assert card["trained"] is False
