"""Interleaved timing, skip estimates and log-log slopes of the benchmark harness."""

from __future__ import annotations

import math

import pytest
import torch

from harness.timing import Estimator, PeakMemory, loglog_slope, measure, over_time


def test_measure_interleaves_the_timed_steps():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    out = measure(steps, torch.device("cpu"), warmup=2, repeats=4, items=8, memory=False)
    # warm-up (and no memory step) per implementation first, then rounds of a, b, c
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]
    assert calls[6:] == ["a", "b", "c"] * 4
    for row in out.values():
        assert len(row["times_s"]) == 4 and row["peak_memory_mib"] is None
        assert row["items_per_s"] == pytest.approx(8 / row["median_s"])


def test_measure_in_blocks_times_consecutive_calls_and_alternates_the_blocks():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    out = measure(steps, torch.device("cpu"), warmup=0, repeats=2, memory=False, block=3)
    assert calls == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    assert all(len(row["times_s"]) == 6 for row in out.values())
    with pytest.raises(ValueError, match="block"):
        measure(steps, torch.device("cpu"), warmup=0, repeats=2, block=0)


def test_measure_memory_step_is_one_extra_call_and_sees_an_allocation():
    calls = []
    keep = []

    def allocate():
        calls.append(1)
        keep.append(torch.ones(64 * 2**20 // 4))  # 64 MiB, touched
        keep.clear()

    out = measure({"x": allocate}, torch.device("cpu"), warmup=0, repeats=1, memory=True)
    assert len(calls) == 2
    mib = out["x"]["peak_memory_mib"]
    if mib is not None:  # Linux: the resident-set peak of the step
        assert 60 <= mib <= 200


def test_measure_rejects_bad_counts():
    with pytest.raises(ValueError, match="repeats"):
        measure({"x": lambda: None}, torch.device("cpu"), warmup=0, repeats=0)


def test_peak_memory_without_allocation_is_small():
    with PeakMemory(torch.device("cpu")) as mem:
        sum(range(1000))
    assert mem.mib is None or mem.mib < 16


def test_loglog_slope_recovers_a_power_law():
    x = [100, 300, 1000, 3000, 10000]
    assert loglog_slope(x, [3.0 * v**1.5 for v in x]) == pytest.approx(1.5, abs=1e-12)
    assert loglog_slope(x, [7.0 for _ in x]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "x, y, message",
    [([1.0], [1.0], "at least two"), ([1.0, 2.0], [1.0, -1.0], "positive"), ([2.0, 2.0], [1.0, 3.0], "distinct")],
)
def test_loglog_slope_errors(x, y, message):
    with pytest.raises(ValueError, match=message):
        loglog_slope(x, y)


def test_estimator_scales_the_worst_cost_per_unit():
    est = Estimator(max_memory_mib=1000.0, max_step_seconds=2.0)
    assert est.why_skip("ours", "train", 1e9) is None  # nothing seen: no estimate
    est.record("ours", "train", 2000, 0.5, 100.0)
    est.record("ours", "train", 4000, 0.8, 150.0)
    assert est.measured("ours", "train") and not est.measured("ours", "inference")
    assert est.why_skip("ours", "train", 7000) is None  # 1.75 s, 350 MiB
    assert "s per step" in est.why_skip("ours", "train", 9000)  # 2.25 s
    assert "GiB" in est.why_skip("ours", "train", 30000)  # 1.5 GiB before 7.5 s is checked


def test_over_time():
    assert over_time(0.0, None) is None
    assert "time budget" in over_time(-math.inf, 1.0)
