"""Interval and testing primitives against statsmodels' implementations and hand values."""

from __future__ import annotations

import pytest
from scipy.stats import chi2_contingency
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from audits.engines.stats import (
    benjamini_hochberg_adjust,
    holm_adjust,
    katz_ratio_interval,
    mover_sum_interval,
    newcombe_interval,
    two_proportion_p_value,
    wilson_interval,
)

CASES = [(0, 10), (1, 10), (5, 10), (10, 10), (37, 120), (512, 4096), (3, 2000)]


@pytest.mark.parametrize(("successes", "trials"), CASES)
def test_wilson_interval_equals_statsmodels(successes: int, trials: int) -> None:
    expected = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    assert wilson_interval(successes, trials) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("a", "b"), [((37, 120), (50, 130)), ((0, 40), (5, 40)), ((512, 4096), (300, 3000)), ((9, 9), (4, 12))]
)
def test_newcombe_interval_equals_statsmodels(a, b) -> None:
    expected = confint_proportions_2indep(a[0], a[1], b[0], b[1], method="newcomb", compare="diff")
    assert newcombe_interval(*a, *b) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("a", "b"), [((37, 120), (50, 130)), ((512, 4096), (300, 3000)), ((4, 12), (9, 10))])
def test_katz_ratio_interval_equals_statsmodels_log_method(a, b) -> None:
    expected = confint_proportions_2indep(a[0], a[1], b[0], b[1], method="log", compare="ratio")
    assert katz_ratio_interval(*a, *b) == pytest.approx(expected, rel=1e-10)


def test_katz_ratio_interval_adds_a_half_when_a_count_is_zero() -> None:
    low, high = katz_ratio_interval(0, 50, 10, 50)
    # (0.5/51) / (10.5/51) = 0.0476...
    assert low < 0.5 / 10.5 < high and high < 1


@pytest.mark.parametrize(("a", "b"), [((37, 120), (50, 130)), ((512, 4096), (300, 3000)), ((0, 30), (6, 30))])
def test_two_proportion_p_value_equals_the_uncorrected_chi_square_test(a, b) -> None:
    # For a 2x2 table the pooled z statistic squared is Pearson's chi-square.
    table = [[a[0], a[1] - a[0]], [b[0], b[1] - b[0]]]
    expected = chi2_contingency(table, correction=False)[1]
    assert two_proportion_p_value(*a, *b) == pytest.approx(expected, rel=1e-10)


def test_two_proportion_p_value_by_hand() -> None:
    # 30/100 vs 20/100: pooled 0.25, se = sqrt(0.25*0.75*0.02) = 0.0612372, z = 1.63299, p = 0.102470
    assert two_proportion_p_value(30, 100, 20, 100) == pytest.approx(0.1024704, abs=1e-6)


def test_mover_of_two_symmetric_intervals_adds_widths_in_quadrature() -> None:
    low, high = mover_sum_interval([0.1, 0.2], [(0.0, 0.2), (0.1, 0.3)])
    assert (low, high) == pytest.approx((0.3 - 2**0.5 * 0.1, 0.3 + 2**0.5 * 0.1))


P_VALUES = [0.01, 0.04, 0.03, 0.005, None, 0.2, 0.049]


def test_holm_equals_statsmodels_and_skips_undefined() -> None:
    defined = [p for p in P_VALUES if p is not None]
    expected = list(multipletests(defined, method="holm")[1])
    adjusted = holm_adjust(P_VALUES)
    assert adjusted[4] is None
    assert [a for a in adjusted if a is not None] == pytest.approx(expected, abs=1e-12)


def test_benjamini_hochberg_equals_statsmodels() -> None:
    defined = [p for p in P_VALUES if p is not None]
    expected = list(multipletests(defined, method="fdr_bh")[1])
    assert [a for a in benjamini_hochberg_adjust(P_VALUES) if a is not None] == pytest.approx(expected, abs=1e-12)
