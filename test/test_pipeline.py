"""The node's inference loop without ROS (lfn_ros.pipeline): latest-only input under a flood,
out-of-memory at every stage, runtime switches, resets. In one process, with a real engine."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lfn_ros.engine import FlowEngine
from lfn_ros.model.liteflownet import LiteFlowNet
from lfn_ros.pipeline import FlowPipeline, InputError, InputFrame, LatestSlot

H, W = 64, 96


def textured(shift: int = 0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(H, W + 64, 3), dtype=np.uint8)
    return np.ascontiguousarray(base[:, shift:shift + W])


class Harness:
    """A pipeline with a real (untrained, small) engine; messages are (seconds, rgb or None, encoding)."""

    def __init__(self, cascade: str = "auto", **settings) -> None:
        torch.manual_seed(0)
        self.engine = FlowEngine(model=LiteFlowNet(finest_level=4), device="cpu", trained=False, backend="torch",
                                 cascade=cascade)
        self.settings = {"publish_occlusion": True, "want_points": False, **settings}
        self.published = []
        self.converted = []  # stamps of the messages converted and staged, in order
        self.events = []
        self.pipeline = FlowPipeline(self.engine, self.convert, self.publish, lambda: self.settings,
                                     lambda kind, text: self.events.append((kind, text)))

    def convert(self, message) -> InputFrame:
        seconds, rgb, encoding = message
        if rgb is None:
            raise InputError("truncated buffer")
        self.converted.append(seconds)
        return InputFrame(rgb=rgb, encoding=encoding, header=SimpleNamespace(seconds=seconds), stamp=seconds, seconds=seconds)

    def publish(self, frame, result, settings) -> None:
        self.published.append((result.stamp, result.previous_stamp, result))

    def drain(self, ahead=None) -> None:
        """Run the loop until nothing is staged or waiting; ``ahead``: what a previous step returned."""
        ahead = self.pipeline.step(ahead, timeout=0.01)
        while ahead is not None or self.pipeline.slot.ready():
            ahead = self.pipeline.step(ahead, timeout=0.01)

    def feed(self, *messages) -> None:
        for message in messages:
            self.pipeline.submit(message)
            self.drain()


def test_latest_slot_keeps_only_the_newest():
    slot = LatestSlot()
    assert slot.take() is None and not slot.ready()
    slot.put(1)
    slot.put(2)
    slot.put(3)
    assert slot.dropped == 2 and slot.take() == 3 and slot.take() is None
    got = []
    thread = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    thread.start()
    slot.put("late")
    thread.join(5)
    assert got == ["late"] and slot.dropped == 2


def test_a_flood_drops_frames_publishes_increasing_stamps_and_accounts_for_every_message():
    h = Harness()
    stop = threading.Event()
    worker = threading.Thread(target=h.pipeline.run, args=(stop, 0.01))
    worker.start()
    sent = 300
    for i in range(sent):  # far faster than the engine: most frames must be dropped
        h.pipeline.submit((float(i), textured(i % 16, seed=i % 3), "rgb8"))
        time.sleep(0.0005)
    deadline = time.monotonic() + 30
    while h.pipeline.slot.ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    stop.set()
    worker.join(10)
    counts = h.pipeline.counts
    stamps = [stamp for stamp, _, _ in h.published]
    assert counts.received == sent
    assert counts.processed == len(h.published) > 2
    assert h.pipeline.dropped > sent // 2, "overload must drop frames, not queue them"
    assert counts.processed + counts.first_frames + h.pipeline.dropped + counts.skipped == counts.received
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "published stamps must only increase"
    assert all(prev < stamp for stamp, prev, _ in h.published)


@pytest.mark.parametrize("where", ["stage", "run", "wait"])
def test_out_of_memory_at_every_stage_releases_memory_resets_and_recovers(where, monkeypatch):
    h = Harness()
    released = []
    monkeypatch.setattr(h.engine, "release_memory", lambda: released.append(where))
    h.feed((0.0, textured(0), "rgb8"), (1.0, textured(2), "rgb8"))
    assert len(h.published) == 1 and h.engine.has_previous

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    if where == "stage":
        original = h.engine._upload
        monkeypatch.setattr(h.engine, "_upload", oom)
    elif where == "run":
        original = h.engine.backend.decode
        monkeypatch.setattr(h.engine.backend, "decode", oom)
    else:
        original = h.engine._download
        monkeypatch.setattr(h.engine, "_download", lambda outputs, clock: (outputs, SimpleNamespace(synchronize=oom)))
    h.feed((2.0, textured(4), "rgb8"))
    assert released == [where]
    assert not h.engine.has_previous, "the sequence must restart after running out of memory"
    assert h.events[-1][0] == "failure" and "out of device memory" in h.events[-1][1]
    assert len(h.published) == 1
    monkeypatch.setattr(*{"stage": (h.engine, "_upload"), "run": (h.engine.backend, "decode"),
                          "wait": (h.engine, "_download")}[where], original)
    h.feed((3.0, textured(6), "rgb8"), (4.0, textured(8), "rgb8"))
    assert [p[0] for p in h.published] == [1.0, 4.0], "a new sequence starts, then flow again"
    assert h.pipeline.counts.resets == 1


def test_bad_messages_are_skipped_without_breaking_the_sequence():
    h = Harness()
    h.feed((0.0, textured(0), "rgb8"), (1.0, None, "rgb8"), (2.0, np.zeros((8, 8, 3), np.uint8), "rgb8"),
           (3.0, textured(2), "rgb8"))
    assert [p[:2] for p in h.published] == [(3.0, 0.0)]
    assert [kind for kind, _ in h.events] == ["bad_input", "bad_input"]
    assert h.pipeline.counts.skipped == 2


def test_encoding_change_time_going_back_and_resolution_change_start_new_sequences():
    h = Harness()
    h.feed((0.0, textured(0), "rgb8"), (1.0, textured(1), "rgb8"),   # flow
           (2.0, textured(2), "bgr8"),                                  # encoding change: reset
           (3.0, textured(3), "bgr8"),                                  # flow
           (1.5, textured(4), "bgr8"),                                  # stamp went back: reset
           (4.0, textured(5), "bgr8"))                                  # flow
    assert [p[0] for p in h.published] == [1.0, 3.0, 4.0]
    assert h.pipeline.counts.resets == 2


def test_runtime_switches_take_effect_on_the_next_frame():
    h = Harness()
    h.feed((0.0, textured(0), "rgb8"), (1.0, textured(3), "rgb8"))
    assert h.published[-1][2].occlusion is not None
    h.settings["publish_occlusion"] = False  # the backward pass is skipped
    h.feed((2.0, textured(6), "rgb8"))
    assert h.published[-1][2].occlusion is None
    h.settings["want_points"] = True  # flow/points needs the mask even without the occlusion topic
    h.feed((3.0, textured(9), "rgb8"))
    assert h.published[-1][2].occlusion is not None
    # Thresholds: beta 0 and alpha 0 flag every pixel with any inconsistency; huge ones flag none
    # but the pixels whose destination leaves the frame.
    h.engine.configure(alpha=0.0, beta=0.0)
    h.feed((4.0, textured(12), "rgb8"))
    strict = h.published[-1][2].occlusion.mean()
    h.engine.configure(alpha=1.0, beta=100.0)
    h.feed((5.0, textured(15), "rgb8"))
    loose = h.published[-1][2].occlusion.mean()
    assert strict > loose


class FakeClock:
    """A clock the test moves by hand (LatestSlot's arrival times and ages)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def camera_at(h: Harness, clock: FakeClock, period: float, count: int, first: int = 0) -> None:
    """``count`` frames at ``period`` s on the fake clock (the slot learns the camera's period)."""
    for i in range(first, first + count):
        clock.t += period
        h.pipeline.submit((float(i), textured(i % 16), "rgb8"))


def camera_and_engine(period: float, turn: float, limit: float = 0.5) -> tuple:
    """(harness, fake clock): the slot has seen frames 0..5 every ``period`` s (all of them taken
    or dropped), the loop's last turns took ``turn`` s each."""
    clock = FakeClock()
    h = Harness(stale_frame_age=limit)
    h.pipeline.slot = LatestSlot(clock=clock)
    h.pipeline.turns.extend([turn] * 3)
    camera_at(h, clock, period, 6)
    h.pipeline.slot.take()
    h.pipeline.slot.count_drop()
    return h, clock


@pytest.mark.parametrize("limit, expected", [(0.5, "next"), (1.0, "stale")])
def test_a_stale_frame_gives_way_to_the_next_one_when_it_comes_in_time(limit, expected):
    h, clock = camera_and_engine(0.05, 0.2, limit)  # the engine takes 4 periods a frame: overloaded
    camera_at(h, clock, 0.05, 1, first=6)  # frame 6 arrives...
    clock.t += 0.03  # ... and has waited 30 ms (0.6 periods) when the engine gets free
    # The camera's next frame comes 20 ms later, from another thread (the subscription callback).
    timer = threading.Timer(0.02, lambda: h.pipeline.submit((7.0, textured(7), "rgb8")))
    timer.start()
    ahead = h.pipeline.step(None, timeout=0.01)  # starts the sequence with the frame it chose
    timer.join()
    h.drain(ahead)
    counts = h.pipeline.counts
    if expected == "next":  # frame 6 dropped for 7, which started the sequence
        assert counts.fresher == 1 and counts.first_frames == 1 and h.converted == [7.0]
    else:  # frame 6 computed at once, then 7
        assert counts.fresher == 0 and h.converted == [6.0, 7.0] and h.published[0][0] == 7.0
    assert counts.processed + counts.first_frames + h.pipeline.dropped + counts.skipped == counts.received


def test_a_fresh_frame_runs_at_once_and_a_stopped_camera_costs_at_most_half_a_period():
    h, clock = camera_and_engine(0.2, 0.5)
    clock.t += 0.05  # a quarter period old: fresh enough
    h.pipeline.submit((6.0, textured(6), "rgb8"))
    clock.t += 0.05
    h.pipeline.step(None, timeout=0.01)
    assert h.converted == [6.0]
    h.pipeline.submit((7.0, textured(7), "rgb8"))
    clock.t += 0.15  # three quarters of a period: stale, and no frame comes after it
    start = time.monotonic()
    h.pipeline.step(None, timeout=0.01)
    waited = time.monotonic() - start
    assert h.converted == [6.0, 7.0] and [p[0] for p in h.published] == [7.0]
    assert h.pipeline.counts.fresher == 0
    # Due in 0.05 s, plus half a period of slack (0.1 s); the engine's own step is on top.
    assert 0.14 <= waited < 0.14 + 5.0


def test_no_frame_gives_way_while_the_engine_keeps_up_with_the_camera():
    """Turns shorter than the period: every frame can get its flow, so even an old one runs."""
    h, clock = camera_and_engine(0.05, 0.03)
    h.pipeline.submit((6.0, textured(6), "rgb8"))
    clock.t += 0.045  # 0.9 periods old; the next frame comes 10 ms later
    timer = threading.Timer(0.01, lambda: h.pipeline.submit((7.0, textured(7), "rgb8")))
    timer.start()
    ahead = h.pipeline.step(None, timeout=0.01)  # frame 7 may have come during it: then it is staged
    timer.join()
    h.drain(ahead)
    assert h.converted == [6.0, 7.0] and h.pipeline.counts.fresher == 0
    assert [p[0] for p in h.published] == [7.0]


@pytest.mark.parametrize("adaptive", [True, False])
def test_a_cascade_slower_than_the_camera_runs_in_one_pass_until_it_fits_again(adaptive, monkeypatch):
    """The adaptive cascade in the loop (lfn_ros.governor): a 10 Hz camera, a cascaded step of
    0.2 s and a one-pass step of 0.12 s on the fake clock. After three cascaded turns the frames
    run in one pass and say so; the machine then gets 3x faster and the cascade comes back. With
    ``adaptive_cascade`` off every frame stays two-scale."""
    clock = FakeClock()
    h = Harness(cascade="two-scale", stale_frame_age=1.0, adaptive_cascade=adaptive)
    h.pipeline.slot = LatestSlot(clock=clock)
    # Frames are fed one at a time (the loop's own dropping is tested above), so the slot would
    # see the engine's pace; the camera's period is given instead.
    monkeypatch.setattr(h.pipeline.slot, "period", lambda: 0.1)
    costs = {"two-scale": 0.2, "none": 0.12}
    original = h.engine.run

    def timed_run(staged, one_pass=False):  # the engine's step, as time on the fake clock
        clock.t += costs["none" if one_pass else "two-scale"]
        return original(staged, one_pass=one_pass)

    monkeypatch.setattr(h.engine, "run", timed_run)

    def frames(first, count):
        for i in range(first, first + count):
            h.feed((float(i), textured(i % 16), "rgb8"))
        return [result.cascade for _, _, result in h.published[-(count - (first == 0)):]]

    modes = frames(0, 20)
    counts = h.pipeline.counts
    if not adaptive:
        assert set(modes) == {"two-scale"} and counts.one_pass == 0 and h.pipeline.governor.switches == 0
        return
    assert modes[:3] == ["two-scale"] * 3 and set(modes[4:]) == {"none"}, modes
    assert counts.one_pass == modes.count("none") and h.pipeline.governor.reduced
    costs.update({"two-scale": 0.066, "none": 0.04})  # estimated 0.067 s against 0.085 allowed
    modes = frames(20, 12)
    assert modes[-1] == "two-scale" and not h.pipeline.governor.reduced, modes
    assert counts.processed + counts.first_frames + h.pipeline.dropped + counts.skipped == counts.received
