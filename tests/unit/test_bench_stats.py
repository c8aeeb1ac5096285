"""bench.stats: medians, nearest-rank percentiles, paired medians; None passes through."""

from __future__ import annotations

import pytest

from bench import stats


def test_median_and_none() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert stats.median([]) is None


@pytest.mark.parametrize(("p", "want"), [(50, 5.0), (90, 9.0), (99, 10.0), (100, 10.0), (1, 1.0), (0, 1.0)])
def test_percentile_is_nearest_rank(p: float, want: float) -> None:
    assert stats.percentile([float(v) for v in range(10, 0, -1)], p) == want


def test_percentile_of_nothing() -> None:
    assert stats.percentile([], 90) is None


def test_p99_of_fifty_is_the_slowest_but_none() -> None:
    values = [float(v) for v in range(1, 51)]
    assert stats.percentile(values, 99) == 50.0  # ceil(0.99 * 50) = 50: with 50, the slowest


def test_ratio() -> None:
    assert stats.ratio(3.0, 2.0) == 1.5
    assert stats.ratio(None, 2.0) is None
    assert stats.ratio(1.0, None) is None
    assert stats.ratio(1.0, 0.0) is None


def test_paired_skips_failed_runs_pairwise() -> None:
    xs = [10.0, None, 30.0, 40.0]
    ys = [1.0, 2.0, None, 4.0]
    assert stats.paired(xs, ys, stats.difference) == pytest.approx(22.5)  # median of 9 and 36
    assert stats.paired([None], [1.0], stats.difference) is None


def test_units() -> None:
    assert stats.to_ms(0.0123456789) == 12.345679
    assert stats.to_ms(None) is None
    assert stats.to_mb(10342) == 10.1
    assert stats.rounded(None) is None
