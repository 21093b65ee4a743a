"""The 2D + 3D training mix (lfn_ros.data.mix): shares, the batch contract, determinism by the
layered generator's state alone."""

import pytest
import torch

from lfn_ros.data.mix import MixedSource
from lfn_ros.data.synthetic import SyntheticFlow
from lfn_ros.train.config import TrainConfig

SIZE = (48, 64)


def test_share_zero_gives_the_layered_generators_pairs():
    reference = SyntheticFlow(*SIZE, seed=3)
    # The mix first draws each pair's source and its scenes' seed from the same generator.
    torch.rand(3, generator=reference.generator)
    torch.randint(0, 1 << 30, (1,), generator=reference.generator)
    plain = reference.sample(3)
    batch = MixedSource(SyntheticFlow(*SIZE, seed=3), share=0.0).sample(3)
    assert batch.keys() == plain.keys()
    for key in plain:
        assert torch.equal(batch[key], plain[key]), key


def test_share_one_renders_every_pair_in_the_layered_contract():
    source = MixedSource(SyntheticFlow(*SIZE, seed=0), share=1.0)
    batch = source.sample(2, SIZE)
    assert batch["image1"].shape == (2, 3, *SIZE) and batch["flow"].shape == (2, 2, *SIZE)
    assert batch["occlusion"].dtype == torch.bool and batch["valid"].dtype == torch.bool
    assert 0.0 <= float(batch["image1"].min()) and float(batch["image1"].max()) <= 1.0
    # A camera moving through a rigid scene: the flow is not one translation.
    assert float(batch["flow"].std(dim=(2, 3)).min()) > 0.01


def test_the_layered_generators_state_determines_the_mixed_batch():
    source = MixedSource(SyntheticFlow(*SIZE, seed=11), share=0.5)
    state = source.get_state()
    first = source.sample(6, SIZE)
    source.set_state(state)
    again = source.sample(6, SIZE)
    for key in first:
        assert torch.equal(first[key], again[key]), key


def test_the_share_is_the_fraction_of_rendered_pairs():
    source = MixedSource(SyntheticFlow(*SIZE, seed=5), share=0.25)
    draws = [int((torch.rand(8, generator=source.generator) < 0.25).sum()) for _ in range(200)]
    assert abs(sum(draws) / (200 * 8) - 0.25) < 0.05


def test_bad_shares_are_refused():
    with pytest.raises(ValueError, match="share"):
        MixedSource(SyntheticFlow(*SIZE), share=1.5)
    with pytest.raises(ValueError, match="scenes3d_share"):
        TrainConfig(scenes3d_share=-0.1, device="cpu")
