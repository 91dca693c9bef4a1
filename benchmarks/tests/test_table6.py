"""cifar-bench's He et al. Table 6 estimate: never negative, never falling with depth, never below a
measurement, whatever the timings (noise included)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cifar_resnets.bench.results import Result
from cifar_resnets.bench.table6 import (
    TABLE6_BATCH,
    TABLE6_DEPTHS,
    TABLE6_STEPS,
    cifar_depth,
    seconds_per_image_in_depth,
    table6_seconds,
    time_to_table,
)

IMAGES = TABLE6_STEPS * TABLE6_BATCH  # images per Table 6 run
DEPTHS = range(1, 200)


def _check_model(measured: dict[int, float]) -> None:
    s = seconds_per_image_in_depth(measured)
    costs = [s(d) for d in DEPTHS]
    assert all(math.isfinite(c) and c > 0 for c in costs)
    assert all(b >= a for a, b in zip(costs, costs[1:])), "the cost fell with depth"
    for depth, value in measured.items():
        assert s(depth) >= value, f"depth {depth} costed below its measurement"
    seconds, _ = table6_seconds(measured)
    assert seconds >= IMAGES * sum(s(d) for d in TABLE6_DEPTHS) * (1 - 1e-12) > 0


def test_timings_that_fall_with_depth_cost_every_deeper_net_as_the_slowest_shallower_one():
    # A least-squares line through these has a negative slope and took Table 6 below zero.
    measured = {20: 4e-5, 32: 2e-5, 56: 1e-5}
    assert np.polyval(np.polyfit(list(measured), list(measured.values()), 1), 110) < 0
    _check_model(measured)
    s = seconds_per_image_in_depth(measured)
    assert s(20) == s(32) == s(44) == s(56) == 4e-5
    assert s(110) == pytest.approx(4e-5 * 110 / 56)
    _, how = table6_seconds(measured)
    assert "depth 32,56 measured faster than a shallower net" in how


def test_equal_timings_stay_flat_between_the_measured_depths():
    measured = {20: 1e-5, 56: 1e-5}
    _check_model(measured)
    s = seconds_per_image_in_depth(measured)
    assert [s(d) for d in (8, 20, 32, 44, 56)] == [1e-5] * 5
    assert s(110) == pytest.approx(1e-5 * 110 / 56)


def test_one_depth_costs_deeper_nets_in_proportion_and_shallower_ones_as_measured():
    _check_model({56: 2e-5})
    seconds, how = table6_seconds({20: 1e-5})
    assert seconds == pytest.approx(IMAGES * 1e-5 * sum(max(1.0, d / 20) for d in TABLE6_DEPTHS))
    assert "depth 32,44,56,110 costed proportionally to depth 20" in how
    seconds, how = table6_seconds({110: 1e-4})
    assert seconds == pytest.approx(IMAGES * 9e-4)  # every run costed as the deepest: an upper bound
    assert "depth 20,32,44,56 costed as depth 110" in how


def test_timings_proportional_to_depth_are_kept_exactly():
    seconds, _ = table6_seconds({20: 20e-6, 56: 56e-6})
    assert seconds == pytest.approx(IMAGES * 1e-6 * sum(TABLE6_DEPTHS))


@given(
    st.dictionaries(
        st.sampled_from([8, 14, 20, 32, 44, 56, 110]),
        st.floats(min_value=1e-7, max_value=1e-2),
        min_size=1,
        max_size=7,
    )
)
def test_noisy_timings_never_give_a_negative_falling_or_undercutting_estimate(measured):
    _check_model(measured)


@pytest.mark.parametrize("measured", [{}, {20: 0.0}, {20: -1e-5}, {20: math.nan}, {20: math.inf}])
def test_unusable_timings_are_refused_with_the_reason(measured):
    with pytest.raises(ValueError, match="no measured depth|finite and > 0"):
        table6_seconds(measured)


def test_time_to_table_uses_batch_128_cifar_depths_per_path_and_averages_repeats():
    results = [
        Result("resnet20", 128, "cifar-train", 50_000.0, 10, 1.0, None, "bf16-mixed"),
        Result("resnet20", 128, "cifar-train", 100_000 / 3, 10, 1.0, None, "bf16-mixed"),  # mean s: 2.5e-5
        Result("resnet20", 512, "cifar-train", 1e9, 10, 1.0, None, "bf16-mixed"),  # not the paper's batch
        Result("resnet18", 128, "cifar-train", 1e9, 10, 1.0, None, "bf16-mixed"),  # not a CIFAR depth
        Result("resnet20", 128, "reference", 1e5, 10, 1.0, None, "32-true"),
    ]
    table = time_to_table(results)
    ratio = sum(max(1.0, d / 20) for d in TABLE6_DEPTHS)
    assert table["cifar-train"]["seconds"] == pytest.approx(IMAGES * 2.5e-5 * ratio, abs=0.1)
    assert table["reference"]["seconds"] == pytest.approx(IMAGES * 1e-5 * ratio, abs=0.1)
    assert list(table) == ["reference", "cifar-train"]
    assert cifar_depth("plain56") == 56 and cifar_depth("resnet18") is None
