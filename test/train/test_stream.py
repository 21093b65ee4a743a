"""The trainer's data stream: flips that keep the ground truth exact, reuse, mixed sizes, resume."""

import torch

from lfn_ros.data.synthetic import SyntheticConfig, SyntheticFlow
from lfn_ros.ops.warp import warp
from lfn_ros.train.stream import PairStream, flip_pairs


def test_flipped_pairs_stay_consistent_with_their_flow():
    batch = SyntheticFlow(64, 96, seed=2, config=SyntheticConfig(augment=False)).sample(4)
    flipped = flip_pairs(batch, torch.tensor([True, False, True, False]), torch.tensor([False, True, True, False]))
    for data in (batch, flipped):
        error = (warp(data["image2"], data["flow"]) - data["image1"]).abs().mean(1, keepdim=True)
        assert float(error[~data["occlusion"]].mean()) < 0.01
    assert torch.equal(flipped["image1"][3], batch["image1"][3])
    assert torch.equal(flipped["flow"][0, 0], -batch["flow"][0, 0].flip(-1))
    assert torch.equal(flipped["flow"][1, 1], -batch["flow"][1, 1].flip(-2))


def test_reuse_generates_one_batch_per_reuse_rounds_and_alternates_sizes():
    source = SyntheticFlow(64, 96, seed=0)
    calls = []
    original = source.sample
    source.sample = lambda n, size=None: calls.append(size) or original(n, size)
    stream = PairStream(source, batch=2, sizes=[(64, 96), (32, 64)], reuse=3)
    shapes = [tuple(stream.next()["flow"].shape[-2:]) for _ in range(12)]
    assert shapes == [(64, 96), (32, 64)] * 6
    assert calls == [(64, 96), (32, 64)] * 2  # rounds 0 and 3 of each size
    assert len(stream._pools[(64, 96)]) == 2


def test_stream_state_round_trip_is_exact():
    a = PairStream(SyntheticFlow(32, 64, seed=4), batch=2, sizes=[(32, 64)], reuse=2, seed=1)
    for _ in range(3):
        a.next()
    state = a.get_state()
    expected = [a.next() for _ in range(3)]
    b = PairStream(SyntheticFlow(32, 64, seed=99), batch=2, sizes=[(32, 64)], reuse=2, seed=7)
    b.set_state(state)
    for want in expected:
        got = b.next()
        for key in want:
            assert torch.equal(got[key], want[key]), key
