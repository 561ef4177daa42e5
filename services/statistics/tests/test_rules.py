"""Unit tests of the written indicator rules (no infrastructure)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime

import pytest

from maillage_statistics.domain.rules import (
    ZERO_BUCKET,
    Filters,
    SiteActType,
    UsageRule,
    UsageStatus,
    bucket_value,
    histogram_bucket,
    histogram_percentile,
    month_starts,
    monthly_average,
    months_between,
    percentile,
    shares,
    site_act_type,
    suppress_small,
)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([4, 4, 4], UsageStatus.REGULAR),
        ([9, 5, 4], UsageStatus.REGULAR),
        ([4, 3, 4], UsageStatus.TRANSITION),
        ([0, 0, 1], UsageStatus.TRANSITION),
        ([0, 0, 0], UsageStatus.NONE),
        ([4], UsageStatus.TRANSITION),  # missing months count as zero
        ([], UsageStatus.NONE),
    ],
)
def test_usage_rule_regular_means_k_sessions_in_each_of_the_last_m_months(
    counts: list[int], expected: UsageStatus
) -> None:
    assert UsageRule(sessions_per_month=4, months=3).status(counts) == expected


def test_usage_rule_only_looks_at_the_last_m_months() -> None:
    assert UsageRule(sessions_per_month=1, months=2).status([0, 0, 1, 1]) == UsageStatus.REGULAR


def test_usage_rule_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError, match="k >= 1"):
        UsageRule(sessions_per_month=0, months=3)


def test_usage_window_is_the_complete_months_before_the_reference() -> None:
    window = UsageRule(months=3).window(date(2026, 4, 1))
    assert window == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert UsageRule(months=2).window(date(2026, 1, 15)) == [date(2025, 11, 1), date(2025, 12, 1)]


def test_month_starts_cross_the_year() -> None:
    assert month_starts(date(2026, 2, 10), 3) == [
        date(2025, 12, 1),
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((5, 1, 0), SiteActType.ASSISTED_TELECONSULTATION),
        ((1, 2, 1), SiteActType.SIMPLE_TELECONSULTATION),
        ((0, 0, 3), SiteActType.TELEEXPERTISE),
        ((2, 2, 2), SiteActType.ASSISTED_TELECONSULTATION),
        ((0, 1, 1), SiteActType.SIMPLE_TELECONSULTATION),
        ((0, 0, 0), None),
    ],
)
def test_a_site_has_its_predominant_act_type(
    counts: tuple[int, int, int], expected: SiteActType | None
) -> None:
    assert site_act_type(*counts) == expected


def test_small_counts_are_suppressed_but_zero_and_five_are_shown() -> None:
    assert [suppress_small(n) for n in (0, 1, 4, 5, 120)] == [0, None, None, 5, 120]


def test_shares_and_averages() -> None:
    assert shares({"a": 1, "b": 3}) == {"a": 0.25, "b": 0.75}
    assert shares({"a": 0}) == {"a": 0.0}
    assert monthly_average(14, 3) == 4.7
    assert months_between(date(2022, 1, 1), date(2023, 12, 31)) == 24


def test_percentile_matches_linear_interpolation() -> None:
    assert percentile([60, 120], 0.5) == 90
    assert percentile([60, 120], 0.9) == pytest.approx(114)
    assert percentile([], 0.5) is None


def test_filters_reject_naive_or_inverted_periods() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Filters(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="end after"):
        Filters(since=datetime(2026, 2, 1, tzinfo=UTC), until=datetime(2026, 1, 1, tzinfo=UTC))


def _histogram(values: list[float]) -> Counter[int]:
    return Counter(histogram_bucket(value) for value in values)


@pytest.mark.parametrize("seed", range(8))
def test_a_percentile_read_from_the_histogram_is_within_2_5_percent(seed: int) -> None:
    rng = random.Random(seed)
    shape = seed % 4
    size = rng.choice([1, 2, 3, 10, 101, 5000])
    values: list[float] = [
        [rng.uniform(10, 600), rng.lognormvariate(6, 1.5), float(rng.randrange(1, 5)),
         rng.expovariate(1 / 72000)][shape]
        for _ in range(size)
    ]  # fmt: skip
    for fraction in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0):
        exact = percentile(values, fraction)
        estimate = histogram_percentile(_histogram(values), fraction)
        assert exact is not None
        assert estimate is not None
        assert abs(estimate - exact) <= 0.025 * exact, (fraction, exact, estimate)


def test_the_histogram_is_order_tolerant_and_additive() -> None:
    rng = random.Random(3)
    values = [rng.uniform(1, 10_000) for _ in range(999)]
    shuffled = rng.sample(values, len(values))
    # Cells merge by adding counts: any split of the rows, in any order, gives one histogram.
    halves = _histogram(shuffled[:400]) + _histogram(shuffled[400:])
    assert halves == _histogram(values)
    assert histogram_percentile(halves, 0.9) == histogram_percentile(_histogram(values), 0.9)


def test_histogram_buckets_are_5_percent_wide() -> None:
    assert histogram_bucket(1.0) == 0
    assert histogram_bucket(1.06) == 1
    assert histogram_bucket(0.0) == ZERO_BUCKET
    assert bucket_value(ZERO_BUCKET) == 0.0
    for value in (0.3, 1.0, 59.9, 600.0, 86_400.0):
        assert abs(bucket_value(histogram_bucket(value)) / value - 1) <= 0.025
    assert histogram_percentile({}, 0.5) is None
    assert histogram_percentile({histogram_bucket(5.0): 0}, 0.5) is None
