"""Training: the multi-scale loss, overfitting a batch, exact resume, checkpoint safety, the CLI."""

import argparse
import json

import pytest
import torch

from lfn_ros.model.liteflownet import LiteFlowNet
from lfn_ros.model.weights import WeightsError, load_model, read_checkpoint
from lfn_ros.train.loss import LEVEL_WEIGHTS, downsample_flow, multiscale_loss
from lfn_ros.precision import warp_error_px
from lfn_ros.train.cli import add_parser, run_cli
from lfn_ros.train.config import TrainConfig, parse_size
from lfn_ros.train.trainer import Trainer, bilinear_kernel, initialise

H, W = 64, 96


def perfect_levels(flow, level_ids):
    return [downsample_flow(flow / 20.0, 2 ** (k - 1))[0] for k in level_ids]


def tiny_args(**overrides):
    base = dict(sizes=((H, W),), batch=2, finest_level=5, warmup=0, lr=1e-4, resume="none", seed=0, device="cpu",
                precision="fp32")
    base.update(overrides)
    return TrainConfig(**base)


# ------------------------------------------------------------------ loss

def test_loss_is_zero_for_perfect_predictions():
    flow = torch.randn(2, 2, H, W) * 5
    levels = perfect_levels(flow, (6, 5, 4, 3, 2))
    loss, parts = multiscale_loss(levels, flow)
    assert float(loss) == 0.0
    assert set(parts) == {6, 5, 4, 3, 2}


def test_level_weights_are_the_published_ones_and_sum_over_pixels():
    assert LEVEL_WEIGHTS == {6: 0.32, 5: 0.08, 4: 0.02, 3: 0.01, 2: 0.005}
    flow = torch.randn(2, 2, H, W)
    ids = (6, 5, 4, 3, 2)
    for k in ids:
        levels = perfect_levels(flow, ids)
        i = ids.index(k)
        levels[i] = levels[i] + torch.tensor([0.3, 0.4]).view(1, 2, 1, 1)  # endpoint error 0.5 everywhere
        loss, parts = multiscale_loss(levels, flow)
        pixels = (H // 2 ** (k - 1)) * (W // 2 ** (k - 1))
        expected = LEVEL_WEIGHTS[k] * 0.5 * pixels  # summed over pixels, averaged over the batch of 2
        assert float(loss) == pytest.approx(expected, rel=1e-5), k
        assert float(parts[k]) == pytest.approx(expected, rel=1e-5)


def test_loss_respects_the_valid_mask_and_partial_levels():
    flow = torch.randn(1, 2, H, W)
    valid = torch.ones(1, 1, H, W, dtype=torch.bool)
    valid[..., : W // 2] = False
    ids = (6, 5, 4)
    # The target at each level is the mean over the *valid* pixels of each cell ...
    levels = [downsample_flow(flow / 20.0, 2 ** (k - 1), valid)[0] for k in ids]
    # ... and garbage in cells without valid pixels changes nothing (level 4 cells are 8x8).
    levels[-1][..., : W // 16] += 100.0
    loss, parts = multiscale_loss(levels, flow, valid, level_ids=ids)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    assert set(parts) == set(ids)


def test_downsample_is_an_area_average():
    flow = torch.arange(16.0).view(1, 1, 4, 4).repeat(1, 2, 1, 1)
    out, valid = downsample_flow(flow, 2)
    assert torch.equal(out[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    assert valid.all()
    with pytest.raises(ValueError):
        downsample_flow(flow, 3)


def test_loss_rejects_mismatched_levels():
    flow = torch.zeros(1, 2, H, W)
    with pytest.raises(ValueError):
        multiscale_loss([torch.zeros(1, 2, 3, 3)], flow)


def test_robust_variant_runs_and_is_smaller_for_better_predictions():
    flow = torch.randn(1, 2, H, W)
    ids = (6, 5)
    good = perfect_levels(flow, ids)
    bad = [level + 1.0 for level in good]
    assert float(multiscale_loss(good, flow, level_ids=ids, robust=True)[0]) < float(multiscale_loss(bad, flow, level_ids=ids, robust=True)[0])


# ------------------------------------------------------------------ initialisation and schedule

def test_initialisation_upsamples_flow_bilinearly():
    assert torch.allclose(bilinear_kernel(4)[0], torch.tensor([0.0625, 0.1875, 0.1875, 0.0625]))
    model = LiteFlowNet()
    initialise(model)
    up = model.matching["level5"].upflow
    coarse = torch.ones(1, 2, 4, 4) * torch.tensor([1.0, -2.0]).view(1, 2, 1, 1)
    fine = up(coarse)
    assert fine.shape == (1, 2, 8, 8)
    assert torch.allclose(fine[..., 1:-1, 1:-1], torch.tensor([1.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, 6, 6))


def test_learning_rate_schedule():
    trainer = Trainer(tiny_args(lr=1e-4, warmup=10, lr_decay_every=100), device="cpu")
    assert trainer.lr_at(0) == pytest.approx(1e-5)
    assert trainer.lr_at(9) == pytest.approx(1e-4)
    assert trainer.lr_at(99) == pytest.approx(1e-4)
    assert trainer.lr_at(100) == pytest.approx(5e-5)
    assert trainer.lr_at(250) == pytest.approx(2.5e-5)


def test_one_cycle_schedule_warms_up_peaks_and_decays_over_the_run():
    trainer = Trainer(tiny_args(lr=4e-4, schedule="onecycle", steps=100, warmup_fraction=0.1, final_lr_ratio=100), device="cpu")
    trainer.run_start = 50  # a run resumed at total step 50
    assert trainer.lr_at(50) == pytest.approx(4e-4 * 0.04)
    assert trainer.lr_at(60) == pytest.approx(4e-4)
    lrs = [trainer.lr_at(s) for s in range(60, 151)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(4e-6)
    with pytest.raises(ValueError, match="steps"):
        tiny_args(schedule="onecycle", steps=None)


def test_fp32_on_request_and_the_warp_probe_works():
    assert warp_error_px("cpu", torch.float32) < 1e-3
    assert warp_error_px("cpu", torch.bfloat16) < 0.02  # positions stay fp32 under bf16
    trainer = Trainer(tiny_args(precision="fp32"), device="cpu")
    assert trainer.amp_dtype is None and trainer.precision == "fp32"


def test_parse_size():
    assert parse_size("320x224") == (224, 320)
    with pytest.raises(ValueError):
        parse_size("300x200")
    assert TrainConfig(sizes="256x192,320x256", device="cpu").sizes == ((192, 256), (256, 320))


# ------------------------------------------------------------------ training

def test_a_few_steps_overfit_a_fixed_batch():
    torch.manual_seed(0)
    trainer = Trainer(tiny_args(lr=3e-4), device="cpu")
    batch = trainer.stream.next()
    first = trainer.train_step(batch)
    for _ in range(14):
        last = trainer.train_step(batch)
    assert last["loss"] < 0.7 * first["loss"], (first["loss"], last["loss"])
    assert last["skipped"] == 0 and trainer.step == 15


def test_inactive_levels_are_frozen():
    trainer = Trainer(tiny_args(finest_level=5), device="cpu")
    assert not any(p.requires_grad for p in trainer.model.matching["level2"].parameters())
    assert all(p.requires_grad for p in trainer.model.matching["level5"].parameters())
    before = {k: v.clone() for k, v in trainer.model.regularization["level4"].state_dict().items()}
    trainer.train_step()
    after = trainer.model.regularization["level4"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_resume_continues_exactly(tmp_path):
    torch.manual_seed(1)
    straight = Trainer(tiny_args(), device="cpu")
    straight.train_step()
    straight.train_step()
    straight.save(tmp_path / "ckpt.pt", card={"steps": straight.step})
    straight.train_step()
    straight.train_step()

    torch.manual_seed(123)  # a different initialisation, all of it overwritten by the checkpoint
    resumed = Trainer(tiny_args(seed=77), device="cpu")
    resumed.load(tmp_path / "ckpt.pt")
    assert resumed.step == 2
    # Parameters and optimizer state identical right after loading...
    saved = read_checkpoint(tmp_path / "ckpt.pt")
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, saved["state_dict"][name]), name
    opt_a = saved["training"]["optimizer"]["state"]
    opt_b = resumed.optimizer.state_dict()["state"]
    assert opt_a.keys() == opt_b.keys()
    for key in opt_a:
        for field in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(opt_a[key][field]), torch.as_tensor(opt_b[key][field]))
    # ... and two more steps (same data stream, same schedule) give the same weights.
    resumed.train_step()
    resumed.train_step()
    assert resumed.step == straight.step == 4
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, rtol=0, atol=1e-7), name


def test_corrupt_or_truncated_checkpoints_are_refused(tmp_path):
    trainer = Trainer(tiny_args(), device="cpu")
    good = tmp_path / "good.pt"
    trainer.save(good, card={})
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 100)
    for path in (truncated, garbage):
        with pytest.raises(WeightsError, match="could not be read"):
            trainer.load(path)
    with pytest.raises(WeightsError, match="does not exist"):
        trainer.load(tmp_path / "missing.pt")


def test_cli_runs_resumes_accumulates_and_exports(tmp_path):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_parser(sub)
    out, export = tmp_path / "run", tmp_path / "shipped.pt"
    common = ["train", "--out", str(out), "--size", "96x64", "--batch", "1", "--finest-level", "6",
              "--log-every", "1", "--device", "cpu", "--precision", "fp32"]
    args = parser.parse_args(common + ["--steps", "2", "--resume", "none"])
    assert args.func is run_cli
    assert run_cli(args) == 0
    args = parser.parse_args(common + ["--steps", "1", "--export", str(export)])  # resume auto: OUT/last.pt
    assert run_cli(args) == 0
    for name in ("last.pt", "metrics.csv", "curves.png", "card.json"):
        assert (out / name).is_file(), name
    card = json.loads((out / "card.json").read_text())
    assert card["steps"] == 3 and card["pairs_seen"] == 3 and len(card["runs"]) == 2
    assert card["finest_level_trained"] == card["recommended_finest_level"] == 6 and card["recipe"]["sizes"] == ["96x64"]
    assert card["trained"] is True
    assert "CPU" in card["hardware"] and card["wall_time_s"] > 0 and card["runs"][-1]["precision"] == "fp32"
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3
    shipped = read_checkpoint(export)
    assert "training" not in shipped and shipped["card"]["steps"] == 3
    assert all(v.dtype == torch.float16 for v in shipped["state_dict"].values() if v.is_floating_point())
    model, card = load_model(export)
    assert card["trained"] and card["steps"] == 3
    assert model.finest_level == 6  # the level it was trained to


def assert_resume_is_exact(config, tmp_path, before: int, after: int, other_seed: int) -> Trainer:
    """Train ``before`` steps, save, train ``after`` more; a trainer of another seed loaded from
    the save and trained ``after`` steps must end with the same weights. Returns the first."""
    torch.manual_seed(1)
    straight = Trainer(config, device="cpu")
    for _ in range(before):
        straight.train_step()
    straight.save(tmp_path / "ckpt.pt", card={"steps": straight.step})
    for _ in range(after):
        straight.train_step()
    resumed = Trainer(config.replace(seed=other_seed), device="cpu")
    resumed.load(tmp_path / "ckpt.pt")
    for _ in range(after):
        resumed.train_step()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, rtol=0, atol=1e-7), name
    return straight


def test_resume_continues_exactly_with_pair_reuse_and_mixed_sizes(tmp_path):
    assert_resume_is_exact(tiny_args(reuse=3, sizes=((64, 96), (64, 64))), tmp_path, 5, 4, other_seed=5)


def test_a_bf16_step_and_an_fp32_step_give_the_same_gradients():
    """bf16 autocast + channels_last must train the same network: the gradient of one step agrees
    with fp32's in direction (cosine > 0.99) and size (within 5 %), level by level."""
    from lfn_ros.precision import cpu_has_native_bf16

    config = tiny_args(sizes=((96, 128),), batch=2, finest_level=3)
    torch.manual_seed(0)
    reference = Trainer(config, device="cpu")
    batch = reference.stream.next()
    fast = Trainer(config.replace(precision="bf16"), device="cpu")
    fast.model.load_state_dict(reference.model.state_dict())
    assert fast.precision == ("bf16" if cpu_has_native_bf16() else "bf16")  # explicit bf16 runs (emulated where not native)
    grads = {}
    for name, trainer in (("fp32", reference), ("bf16", fast)):
        trainer.config.clip = 0
        trainer.optimizer.param_groups[0]["lr"] = 0.0
        trainer.train_step(batch)
        grads[name] = {k: p.grad.detach().float().flatten() for k, p in trainer.model.named_parameters() if p.grad is not None}
    assert grads["fp32"].keys() == grads["bf16"].keys()
    for prefix in ("netc", "matching.level6", "matching.level3", "subpixel.level4", "regularization.level3"):
        a = torch.cat([g for k, g in grads["fp32"].items() if k.startswith(prefix)])
        b = torch.cat([g for k, g in grads["bf16"].items() if k.startswith(prefix)])
        cosine = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
        ratio = float(b.norm() / a.norm())
        assert cosine > 0.99 and abs(ratio - 1) < 0.05, (prefix, cosine, ratio)


def test_one_cycle_over_the_planned_minutes_follows_the_time_used():
    trainer = Trainer(tiny_args(lr=2e-4, schedule="onecycle", steps=None, minutes=10.0, warmup_fraction=0.1), device="cpu")
    trainer.time_progress = 0.1
    assert trainer.lr_at(5) == pytest.approx(2e-4)
    trainer.time_progress = 1.0
    assert trainer.lr_at(5) == pytest.approx(2e-6)


def test_resume_continues_exactly_with_rendered_3d_scenes_in_the_mix(tmp_path):
    straight = assert_resume_is_exact(tiny_args(reuse=2, scenes3d_share=0.5), tmp_path, 3, 3, other_seed=9)
    assert type(straight.stream.source).__name__ == "MixedSource"


def test_weight_average_follows_the_ema_formula_and_swaps_weights_in_and_out():
    from lfn_ros.train.averaging import WeightAverage

    model = torch.nn.Linear(3, 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model)
    # a2 = 0.9 * (0.9 * w0 + 0.1 * (w0 + 1)) + 0.1 * (w0 + 2) = w0 + 0.09 + 0.2
    assert torch.allclose(average.average["weight"], start["weight"] + 0.29, atol=1e-6)
    assert torch.allclose(average.average["bias"], start["bias"], atol=0)
    raw = model.weight.detach().clone()
    with average.applied(model):
        assert torch.allclose(model.weight, start["weight"] + 0.29, atol=1e-6)
    assert torch.equal(model.weight, raw)
    with pytest.raises(ValueError, match="another network"):
        average.load_state_dict({"average": {"weight": raw}})
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_resume_continues_the_weight_average_exactly(tmp_path):
    straight = assert_resume_is_exact(tiny_args(ema_decay=0.5), tmp_path, 2, 2, other_seed=9)
    resumed = Trainer(tiny_args(ema_decay=0.5, seed=9), device="cpu")
    resumed.load(tmp_path / "ckpt.pt")
    for _ in range(2):
        resumed.train_step()
    assert straight.average.updates == resumed.average.updates == 4
    for name, value in straight.average.average.items():
        assert torch.allclose(value, resumed.average.average[name], rtol=0, atol=1e-7), name
        # the average lags the weights: it is not a copy of them
    assert any(not torch.equal(v, straight.model.state_dict()[k]) for k, v in straight.average.average.items())


def test_cli_with_an_average_validates_both_and_exports_average_and_raw(tmp_path, monkeypatch):
    import lfn_ros.train.run as run_module

    calls = []

    def fake_validate(model, precision="fp32", **_):  # the real validation takes minutes at 512x384
        calls.append(float(next(model.parameters()).detach().sum()))
        return {"epe": float(len(calls)), "pairs": 48}

    monkeypatch.setattr(run_module, "validate", fake_validate)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    out, export = tmp_path / "run", tmp_path / "shipped.pt"
    args = parser.parse_args(["train", "--out", str(out), "--size", "96x64", "--batch", "1", "--finest-level", "6",
                              "--device", "cpu", "--precision", "fp32", "--steps", "2", "--resume", "none",
                              "--ema-decay", "0.9", "--validate-every", "2", "--export", str(export)])
    assert run_cli(args) == 0
    assert len(calls) == 2 and calls[0] != calls[1]  # raw, then averaged weights: different tensors
    header, row = (out / "validation.csv").read_text().strip().splitlines()
    assert header.split(",")[:4] == ["step", "epe", "pairs", "ema_epe"] and row.startswith("2,1.0,48,2.0")
    averaged, raw = read_checkpoint(export), read_checkpoint(tmp_path / "shipped_raw.pt")
    assert "moving average, decay 0.9, over 2 steps" in averaged["card"]["weights"]
    assert raw["card"]["weights"].startswith("raw")
    assert any(not torch.equal(v, raw["state_dict"][k]) for k, v in averaged["state_dict"].items()
               if v.is_floating_point())
