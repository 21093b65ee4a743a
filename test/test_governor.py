"""The adaptive cascade's rule (lfn_ros.governor): two-scale while it keeps up with the camera,
one pass while not, back when it fits again; with hysteresis. Durations in seconds."""

from __future__ import annotations

from lfn_ros.governor import CascadeGovernor


def run(governor: CascadeGovernor, period: float, turns: int, two_scale: float, one_pass: float) -> list:
    """``turns`` frames at ``period``: each asks the governor, then records the turn it ran
    (``two_scale`` or ``one_pass`` seconds). Returns the modes chosen."""
    modes = []
    for _ in range(turns):
        reduced = governor.one_pass(period)
        mode = "none" if reduced else "two-scale"
        governor.record(mode, one_pass if reduced else two_scale)
        modes.append(mode)
    return modes


def test_a_cascade_that_keeps_up_is_never_given_up():
    governor = CascadeGovernor()
    assert run(governor, 0.066, 50, two_scale=0.060, one_pass=0.030) == ["two-scale"] * 50
    assert governor.switches == 0


def test_no_camera_period_yet_means_the_cascade():
    governor = CascadeGovernor()
    for _ in range(10):
        governor.record("two-scale", 1.0)
    assert governor.one_pass(None) is False


def test_a_cascade_slower_than_the_camera_gives_way_after_three_turns_and_stays_away():
    """The two-core CPU at 15 Hz: 300 ms cascaded, 175 ms one pass (docs/benchmarks.md). One pass
    does not keep up either, but gets twice the frames, so it stays."""
    governor = CascadeGovernor()
    modes = run(governor, 0.066, 40, two_scale=0.300, one_pass=0.175)
    assert modes[:3] == ["two-scale"] * 3 and set(modes[3:]) == {"none"}
    assert governor.switches == 1 and abs(governor.ratio - 0.300 / 0.175) < 1e-9


def test_it_returns_when_the_camera_slows_down_or_the_machine_gets_faster():
    governor = CascadeGovernor()
    run(governor, 0.066, 20, two_scale=0.100, one_pass=0.060)
    assert governor.reduced
    # Estimated cascaded turn 0.100: a 10 Hz camera (0.085 s of budget) is not enough...
    assert set(run(governor, 0.100, 20, two_scale=0.100, one_pass=0.060)) == {"none"}
    # ... a 5 Hz one is.
    modes = run(governor, 0.200, 20, two_scale=0.100, one_pass=0.060)
    assert modes[0] == "two-scale" and not governor.reduced and governor.switches == 2
    # Back at 15 Hz it gives way again; then another process ends and the machine is 3x faster.
    run(governor, 0.066, 20, two_scale=0.100, one_pass=0.060)
    assert governor.reduced
    modes = run(governor, 0.066, 20, two_scale=0.033, one_pass=0.020)
    assert "two-scale" in modes and not governor.reduced


def test_hysteresis_a_cascade_just_over_the_period_does_not_flip_every_frame():
    """Cascaded 1.05 periods: it gives way once; its estimate (1.05 periods) is above the 0.85
    needed to come back, so it stays in one pass instead of flipping."""
    governor = CascadeGovernor()
    run(governor, 0.100, 100, two_scale=0.105, one_pass=0.070)
    assert governor.switches == 1 and governor.reduced
