"""The time policy (dkp_slam.timeline) on plain stamps."""

from dkp_slam.timeline import (ACCEPT, BACKWARDS, DUPLICATE, INVALID, RESTART, StampPolicy,
                               TimeConfig, restamped)

NS = 1_000_000_000


def _feed(policy, stamps_s):
    return [policy.check(*divmod(round(s * NS), NS)) for s in stamps_s]


def test_each_kind_of_bad_stamp_has_its_verdict_and_counter():
    policy = StampPolicy()
    checks = [policy.check(sec, nsec) for sec, nsec in [
        (0, 0), (10, 0), (10, 0), (9, 500_000_000), (-1, 0), (10, 2_500_000_000),
        (10, 100_000_000), (0, 0)]]
    assert [c.verdict for c in checks] == [ACCEPT, ACCEPT, DUPLICATE, BACKWARDS, INVALID,
                                           INVALID, ACCEPT, INVALID]
    assert [c.counter for c in checks] == [None, None, "stamp_duplicate", "stamp_backwards",
                                           "stamp_invalid", "stamp_invalid", None,
                                           "stamp_invalid"]
    assert all(c.reason for c in checks if not c.accepted)
    assert "restamp_zero" in checks[-1].reason and "goes back 0.500 s" in checks[3].reason
    assert policy.last_ns == 10 * NS + 100_000_000  # rejected stamps never become the last


def test_zero_stamps_restamped_with_the_receive_time_when_configured():
    off, on = TimeConfig(), TimeConfig(restamp_zero=True)
    assert restamped(0, 0, 7 * NS + 5, off) == (0, 0)
    assert restamped(0, 0, 7 * NS + 5, on) == (7, 5)
    assert restamped(3, 0, 7 * NS + 5, on) == (3, 0)
    policy = StampPolicy()
    assert [policy.check(0, 0).verdict for _ in range(2)] == [ACCEPT, DUPLICATE]
    assert "restamp_zero" in policy.check(0, 0).reason


def test_large_jump_back_restarts_and_accepted_stamps_increase_within_a_segment():
    policy = StampPolicy(TimeConfig(reset_backwards_s=2.0))
    stamps = [100.0, 100.1, 100.2, 99.0, 100.3, 50.0, 50.1, 50.1, 50.2]
    checks = _feed(policy, stamps)
    assert [c.verdict for c in checks] == [ACCEPT, ACCEPT, ACCEPT, BACKWARDS, ACCEPT, RESTART,
                                           ACCEPT, DUPLICATE, ACCEPT]
    assert checks[5].accepted and "jumped back 50.300 s" in checks[5].reason
    assert policy.segment == 1
    segments, segment = [], 0
    for c in checks:
        segment += c.verdict == RESTART
        if c.accepted:
            segments.append((segment, c.stamp_ns))
    for (sa, ta), (sb, tb) in zip(segments, segments[1:]):
        assert sb > sa or tb > ta


def test_gaps_against_the_camera_period_count_missing_frames():
    policy = StampPolicy()
    stamps = [1 + 0.05 * i for i in range(10)]           # 20 Hz
    stamps += [stamps[-1] + 0.05 * 4]                     # 3 frames lost
    stamps += [stamps[-1] + 0.05 * k for k in (1, 2, 3)]  # back to normal
    stamps += [stamps[-1] + 0.07]                         # jitter: not a loss
    checks = _feed(policy, stamps)
    assert [c.missing for c in checks] == [0] * 10 + [3, 0, 0, 0, 0]
    assert abs(policy.period_s - 0.05) < 1e-9
    # before the period is known nothing is counted
    assert sum(c.missing for c in _feed(StampPolicy(), [1.0, 1.1, 2.0])) == 0
