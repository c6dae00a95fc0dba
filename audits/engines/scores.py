"""Discrimination and calibration of a score, from mergeable histograms.

A probability score s in [0, 1] is counted in one of SCORE_BINS + 1 bins centred on the
multiples of 1/SCORE_BINS, separately for positives and negatives. Scores given to five
decimals or fewer (most clinical scores) each keep a bin of their own, so the AUROC computed
from the bins is exact; otherwise two different scores can share a bin, are then counted as a
tie, and the error is at most `auroc_bin_error_bound` (half the share of positive-negative
pairs that share a bin), which the result reports.

Calibration uses ten equal-width bins accumulated from the raw scores (exact), the sums
needed for calibration-in-the-large (mean observed minus mean predicted) and its variance,
and the fine bins for the calibration slope (logistic regression of the label on the logit of
the bin's score, by IRLS).

Scores outside [0, 1] (risk points, log-odds) are mapped to (0, 1) by 0.5 + arctan(x)/pi
before binning: order, and so AUROC, is kept; calibration metrics are not defined for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from audits.engines.stats import Z_95, normal_p_value

SCORE_BINS = 100_000
CALIBRATION_BINS = 10
LOGIT_CLIP = 1e-6


def score_positions(scores: np.ndarray, *, is_probability: bool) -> np.ndarray:
    """The bin index of every score."""
    values = scores if is_probability else 0.5 + np.arctan(scores) / math.pi
    return np.rint(np.clip(values, 0.0, 1.0) * SCORE_BINS).astype(np.int64)


@dataclass
class ScoreStatistics:
    """Sufficient statistics of one group's scores against its labels."""

    is_probability: bool = True
    positives: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS + 1, dtype=np.int64))
    negatives: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS + 1, dtype=np.int64))
    calibration_count: np.ndarray = field(default_factory=lambda: np.zeros(CALIBRATION_BINS, dtype=np.int64))
    calibration_score_sum: np.ndarray = field(default_factory=lambda: np.zeros(CALIBRATION_BINS))
    calibration_label_sum: np.ndarray = field(default_factory=lambda: np.zeros(CALIBRATION_BINS))
    residual_sum: float = 0.0  # sum of (label - score)
    residual_square_sum: float = 0.0  # sum of (label - score)^2

    @classmethod
    def from_arrays(cls, labels: np.ndarray, scores: np.ndarray, *, is_probability: bool) -> ScoreStatistics:
        statistics = cls(is_probability=is_probability)
        positions = score_positions(scores, is_probability=is_probability)
        positive = labels == 1
        statistics.positives += np.bincount(positions[positive], minlength=SCORE_BINS + 1)
        statistics.negatives += np.bincount(positions[~positive], minlength=SCORE_BINS + 1)
        if is_probability:
            coarse = np.minimum((scores * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
            statistics.calibration_count += np.bincount(coarse, minlength=CALIBRATION_BINS)
            statistics.calibration_score_sum += np.bincount(coarse, weights=scores, minlength=CALIBRATION_BINS)
            statistics.calibration_label_sum += np.bincount(coarse, weights=labels, minlength=CALIBRATION_BINS)
            residuals = labels - scores
            statistics.residual_sum = float(residuals.sum())
            statistics.residual_square_sum = float(np.dot(residuals, residuals))
        return statistics

    def __add__(self, other: ScoreStatistics) -> ScoreStatistics:
        return ScoreStatistics(
            is_probability=self.is_probability and other.is_probability,
            positives=self.positives + other.positives,
            negatives=self.negatives + other.negatives,
            calibration_count=self.calibration_count + other.calibration_count,
            calibration_score_sum=self.calibration_score_sum + other.calibration_score_sum,
            calibration_label_sum=self.calibration_label_sum + other.calibration_label_sum,
            residual_sum=self.residual_sum + other.residual_sum,
            residual_square_sum=self.residual_square_sum + other.residual_square_sum,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScoreStatistics):
            return NotImplemented
        return (
            self.is_probability == other.is_probability
            and np.array_equal(self.positives, other.positives)
            and np.array_equal(self.negatives, other.negatives)
            and np.array_equal(self.calibration_count, other.calibration_count)
            and np.allclose(self.calibration_score_sum, other.calibration_score_sum, rtol=1e-12, atol=1e-9)
            and np.allclose(self.calibration_label_sum, other.calibration_label_sum, rtol=1e-12, atol=1e-9)
            and math.isclose(self.residual_sum, other.residual_sum, rel_tol=1e-12, abs_tol=1e-9)
            and math.isclose(self.residual_square_sum, other.residual_square_sum, rel_tol=1e-12, abs_tol=1e-9)
        )

    @property
    def n(self) -> int:
        return int(self.positives.sum() + self.negatives.sum())


@dataclass
class Discrimination:
    auroc: float
    variance: float  # DeLong
    ci: tuple[float, float]
    bin_error_bound: float


def discrimination(statistics: ScoreStatistics) -> Discrimination | None:
    """AUROC with its DeLong variance and 95% interval; None unless both classes are present.

    1. Walk the bins in score order; each positive scores 1 against every lower negative
       and 1/2 against every negative of its own bin (the Mann-Whitney statistic).
    2. DeLong's structural components per bin give the variance.
    """
    positives = statistics.positives.astype(np.float64)
    negatives = statistics.negatives.astype(np.float64)
    n_positive, n_negative = positives.sum(), negatives.sum()
    if n_positive == 0 or n_negative == 0:
        return None
    negatives_below = np.cumsum(negatives) - negatives
    positives_above = n_positive - np.cumsum(positives)
    placement_positive = (negatives_below + 0.5 * negatives) / n_negative  # V10 of a positive in the bin
    placement_negative = (positives_above + 0.5 * positives) / n_positive  # V01 of a negative in the bin
    auroc = float(np.dot(positives, placement_positive) / n_positive)
    s10 = float(np.dot(positives, (placement_positive - auroc) ** 2) / (n_positive - 1)) if n_positive > 1 else 0.0
    s01 = float(np.dot(negatives, (placement_negative - auroc) ** 2) / (n_negative - 1)) if n_negative > 1 else 0.0
    variance = s10 / n_positive + s01 / n_negative
    half = Z_95 * math.sqrt(variance)
    bound = 0.5 * float(np.dot(positives, negatives)) / (n_positive * n_negative)
    return Discrimination(auroc, variance, (max(0.0, auroc - half), min(1.0, auroc + half)), bound)


@dataclass
class Calibration:
    expected_calibration_error: float
    calibration_in_the_large: float  # mean observed minus mean predicted
    calibration_in_the_large_variance: float
    calibration_in_the_large_ci: tuple[float, float]
    calibration_slope: float | None
    calibration_slope_ci: tuple[float, float] | None


def calibration(statistics: ScoreStatistics) -> Calibration | None:
    """Calibration of a probability score; None for other scores or an empty group."""
    n = int(statistics.calibration_count.sum())
    if not statistics.is_probability or n == 0:
        return None
    occupied = statistics.calibration_count > 0
    counts = statistics.calibration_count[occupied]
    gaps = np.abs(
        statistics.calibration_label_sum[occupied] / counts - statistics.calibration_score_sum[occupied] / counts
    )
    ece = float(np.dot(counts, gaps) / n)
    mean_residual = statistics.residual_sum / n
    variance = max(statistics.residual_square_sum / n - mean_residual**2, 0.0) * n / (n - 1) / n if n > 1 else math.inf
    half = Z_95 * math.sqrt(variance)
    slope = _calibration_slope(statistics)
    return Calibration(
        expected_calibration_error=ece,
        calibration_in_the_large=mean_residual,
        calibration_in_the_large_variance=variance,
        calibration_in_the_large_ci=(mean_residual - half, mean_residual + half),
        calibration_slope=slope[0] if slope else None,
        calibration_slope_ci=slope[1] if slope else None,
    )


def _calibration_slope(statistics: ScoreStatistics) -> tuple[float, tuple[float, float]] | None:
    """Slope of the logistic regression of the label on logit(score), fitted by IRLS on the fine bins."""
    occupied = (statistics.positives + statistics.negatives) > 0
    positives = statistics.positives[occupied].astype(np.float64)
    totals = positives + statistics.negatives[occupied]
    if positives.sum() == 0 or positives.sum() == totals.sum() or occupied.sum() < 2:
        return None
    centres = np.clip(np.flatnonzero(occupied) / SCORE_BINS, LOGIT_CLIP, 1 - LOGIT_CLIP)
    x = np.log(centres / (1 - centres))
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(100):
        eta = design @ beta
        mu = 1 / (1 + np.exp(-eta))
        weights = totals * mu * (1 - mu)
        information = design.T @ (design * weights[:, None])
        gradient = design.T @ (positives - totals * mu)
        try:
            step = np.linalg.solve(information, gradient)
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    else:
        return None  # no convergence (complete separation)
    try:
        variance = float(np.linalg.inv(information)[1, 1])
    except np.linalg.LinAlgError:
        return None
    if not (np.all(np.isfinite(beta)) and math.isfinite(variance) and variance > 0):
        return None  # a fit at the edge of separation: the slope has no usable interval
    standard_error = math.sqrt(variance)
    slope = float(beta[1])
    return slope, (slope - Z_95 * standard_error, slope + Z_95 * standard_error)


def difference_with_interval(
    estimate_a: float, variance_a: float, estimate_b: float, variance_b: float
) -> tuple[float, tuple[float, float], float | None]:
    """a - b for independent estimates, with a Wald 95% interval and the p-value of a - b = 0."""
    difference = estimate_a - estimate_b
    standard_error = math.sqrt(variance_a + variance_b)
    interval = (difference - Z_95 * standard_error, difference + Z_95 * standard_error)
    return difference, interval, normal_p_value(difference, 0.0, standard_error)
