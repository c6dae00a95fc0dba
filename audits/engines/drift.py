"""Distribution drift of each column against the reference, from mergeable statistics.

The test of each column, its threshold and its verdict are Evidently's (DataDriftPreset,
evidently.legacy.calculations.stattests): missing and infinite values are dropped; with at
most 1000 reference values a numerical column with more than 5 distinct values gets the
two-sample Kolmogorov-Smirnov test, a column with 3 to 5 values (or a categorical one) the
chi-square test and a binary one the z-test, each drifting at p < 0.05; with more reference
values a numerical column with more than 5 distinct values gets the Wasserstein distance
normed by the reference's standard deviation, and any other column the Jensen-Shannon
distance, each drifting at >= 0.1. The dataset drifts when at least half the columns do.
PSI is reported for every column, as Evidently computes it (Sturges bins over both datasets
for a numerical column with more than 20 reference values, else the categories).

Statistics per column: the count of each distinct value (exact, up to EXACT_DISTINCT_LIMIT
values) and a histogram of HISTOGRAM_BINS equal bins over the column's range in both
datasets, known in advance from the Parquet footers. With exact counts every statistic
equals Evidently's. A column with more distinct values is computed from the histogram; the
result then says `approximate` and gives the error bound of the score (one bin width over
the reference's standard deviation for Wasserstein; the largest bin's share for K-S), and the
verdict can differ from Evidently's only when the score lies within that bound of the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from audits.engines.tables import group_codes

EXACT_DISTINCT_LIMIT = 100_000
HISTOGRAM_BINS = 1 << 16
SMALL_REFERENCE = 1000
DATASET_DRIFT_SHARE = 0.5
PSI_BINS = 30


@dataclass
class ColumnSketch:
    """Mergeable statistics of one column's non-missing, finite values."""

    numerical: bool
    low: float = 0.0  # histogram range, numerical columns only
    high: float = 1.0
    count: int = 0
    total: float = 0.0
    total_squares: float = 0.0
    # The count of every distinct value (hashed, unsorted); None once past EXACT_DISTINCT_LIMIT.
    value_counts: pd.Series | None = None
    histogram: np.ndarray | None = None

    @classmethod
    def of(cls, series: pd.Series, *, numerical: bool, value_range: tuple[float, float] | None) -> ColumnSketch:
        if numerical:
            data = series.to_numpy(dtype=float, na_value=np.nan)
            data = data[np.isfinite(data)]
            low, high = value_range if value_range is not None else (0.0, 1.0)
            sketch = cls(True, low, high, len(data), float(data.sum()), float(np.dot(data, data)))
            sketch.value_counts = pd.Series(data, copy=False).value_counts(sort=False)
            sketch.histogram = np.bincount(sketch._bins(data), minlength=HISTOGRAM_BINS)
        else:
            data = series.dropna()
            if pd.api.types.is_float_dtype(data) and np.all(np.floor(data.to_numpy()) == data.to_numpy()):
                data = data.astype(np.int64)  # 1.0 and 1 are the same category
            counts = data.value_counts(sort=False)
            counts.index = counts.index.map(str)
            sketch = cls(False, count=len(data), value_counts=counts)
        sketch._cap()
        return sketch

    def _bins(self, data: np.ndarray) -> np.ndarray:
        if self.high <= self.low:
            return np.zeros(len(data), dtype=np.int64)
        scaled = (data - self.low) / (self.high - self.low) * HISTOGRAM_BINS
        return np.clip(scaled.astype(np.int64), 0, HISTOGRAM_BINS - 1)

    def _cap(self) -> None:
        if self.value_counts is not None and len(self.value_counts) > EXACT_DISTINCT_LIMIT:
            self.value_counts = None

    @property
    def exact(self) -> bool:
        return self.value_counts is not None

    def merge(self, other: ColumnSketch) -> ColumnSketch:
        merged = ColumnSketch(
            self.numerical,
            self.low,
            self.high,
            self.count + other.count,
            self.total + other.total,
            self.total_squares + other.total_squares,
        )
        if self.value_counts is not None and other.value_counts is not None:
            combined = pd.concat([self.value_counts, other.value_counts])
            merged.value_counts = combined.groupby(level=0, sort=False).sum()
            merged._cap()
        if self.histogram is not None and other.histogram is not None:
            merged.histogram = self.histogram + other.histogram
        return merged

    @property
    def values(self) -> np.ndarray | None:
        """The distinct values, sorted."""
        if self.value_counts is None:
            return None
        return np.sort(self.value_counts.index.to_numpy())

    @property
    def counts(self) -> np.ndarray | None:
        """The count of each value of `values`, in the same order."""
        if self.value_counts is None:
            return None
        ordered = self.value_counts.sort_index()
        return ordered.to_numpy(dtype=np.int64)

    @property
    def distinct(self) -> int | None:
        return None if self.value_counts is None else len(self.value_counts)

    @property
    def std(self) -> float:
        if self.count == 0:
            return 0.0
        mean = self.total / self.count
        return math.sqrt(max(self.total_squares / self.count - mean * mean, 0.0))

    def std_exact(self) -> float:
        """The population standard deviation from the distinct values (numerically stable), as numpy gives it."""
        if self.value_counts is None or self.count == 0:
            return self.std
        values = self.value_counts.index.to_numpy(dtype=float)
        counts = self.value_counts.to_numpy(dtype=float)
        mean = float(np.dot(values, counts)) / self.count
        return math.sqrt(float(np.dot(counts, (values - mean) ** 2)) / self.count)


def _merge_sketches(a: dict[str, ColumnSketch], b: dict[str, ColumnSketch]) -> dict[str, ColumnSketch]:
    merged = dict(a)
    for name, sketch in b.items():
        merged[name] = merged[name].merge(sketch) if name in merged else sketch
    return merged


@dataclass
class DriftStatistics:
    columns: dict[str, ColumnSketch] = field(default_factory=dict)
    # Per (protected attribute, group): sketches of the columns followed within groups.
    groups: dict[tuple[str, str], dict[str, ColumnSketch]] = field(default_factory=dict)

    def merge(self, other: DriftStatistics) -> DriftStatistics:
        groups = dict(self.groups)
        for key, sketches in other.groups.items():
            groups[key] = _merge_sketches(groups[key], sketches) if key in groups else sketches
        return DriftStatistics(_merge_sketches(self.columns, other.columns), groups)


def drift_statistics(
    frame: pd.DataFrame,
    *,
    numerical: list[str],
    categorical: list[str],
    ranges: dict[str, tuple[float, float]] | None = None,
    protected: Iterable[str] = (),
    group_columns: Iterable[str] = (),
) -> DriftStatistics:
    """The sketch of every drift column in one chunk, and of group_columns within each protected group.

    Numerical ranges must span both datasets (they fix the histogram bins).
    """

    def sketch(series: pd.Series, column: str) -> ColumnSketch:
        if column in numerical:
            return ColumnSketch.of(series, numerical=True, value_range=(ranges or {}).get(column))
        return ColumnSketch.of(series, numerical=False, value_range=None)

    sketches = {c: sketch(frame[c], c) for c in [*numerical, *categorical]}
    followed = [c for c in group_columns if c in sketches]
    groups: dict[tuple[str, str], dict[str, ColumnSketch]] = {}
    for attribute in protected if followed else ():
        codes, names = group_codes(frame[attribute])
        for index, name in enumerate(names):
            members = frame.loc[codes == index, followed]
            groups[(attribute, name)] = {c: sketch(members[c], c) for c in followed}
    return DriftStatistics(sketches, groups)


def group_drift_report(
    reference: DriftStatistics, current: DriftStatistics, *, min_group_size: int
) -> list[dict[str, Any]]:
    """Drift of the followed columns within each protected group present in both datasets."""
    results = []
    for key in sorted(current.groups):
        if key not in reference.groups:
            continue
        attribute, group = key
        ref_sketches, cur_sketches = reference.groups[key], current.groups[key]
        reference_rows = max((s.count for s in ref_sketches.values()), default=0)
        current_rows = max((s.count for s in cur_sketches.values()), default=0)
        record: dict[str, Any] = {
            "attribute": attribute,
            "group": group,
            "reference_rows": reference_rows,
            "current_rows": current_rows,
        }
        if min(reference_rows, current_rows) < min_group_size:
            record.update(status="insufficient_data", columns=[])
        else:
            columns = [column_drift(c, ref_sketches[c], cur_sketches[c]) for c in cur_sketches if c in ref_sketches]
            record.update(status="assessed", columns=[asdict(c) for c in columns])
        results.append(record)
    return results


@dataclass
class ColumnDrift:
    column: str
    column_type: str
    stattest: str | None
    score: float | None
    threshold: float | None
    drifted: bool | None
    psi: float | None
    reference_rows: int
    current_rows: int
    approximate: bool = False
    error_bound: float | None = None
    note: str = ""


@dataclass
class DriftResult:
    columns: list[ColumnDrift]
    share_drifted: float
    dataset_drift: bool
    drift_share_threshold: float
    reference_rows: int
    current_rows: int
    by_group: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["columns"] = [asdict(c) for c in self.columns]
        result["method"] = (
            "Evidently's DataDriftPreset tests and thresholds, computed from exact value counts "
            "(or fine histograms where a column has more than "
            f"{EXACT_DISTINCT_LIMIT} distinct values: see approximate and error_bound)"
        )
        return result


def column_drift(name: str, reference: ColumnSketch, current: ColumnSketch) -> ColumnDrift:
    """Evidently's test of one column, its score, threshold and verdict, and its PSI."""
    column_type = "numerical" if reference.numerical else "categorical"
    result = ColumnDrift(name, column_type, None, None, None, None, None, reference.count, current.count)
    if reference.count == 0 or current.count == 0:
        result.note = "no values in the " + ("reference" if reference.count == 0 else "current") + " data"
        return result
    n_unique = _union_distinct(reference, current)
    small = reference.count <= SMALL_REFERENCE
    if reference.numerical and (n_unique is None or n_unique > 5):
        if small:
            _ks(result, reference, current)
        else:
            _wasserstein(result, reference, current)
    elif small:
        if n_unique is None or n_unique > 2:
            _chi_square(result, reference, current)
        else:
            _z_test(result, reference, current)
    else:
        _jensen_shannon(result, reference, current)
    result.psi = _psi(reference, current)
    return result


def drift_report(
    reference: DriftStatistics,
    current: DriftStatistics,
    *,
    columns: Iterable[str] | None = None,
    reference_rows: int = 0,
    current_rows: int = 0,
) -> DriftResult:
    """Per-column verdicts and the dataset verdict (at least half the assessed columns drift)."""
    names = list(columns) if columns is not None else list(current.columns)
    results = [column_drift(n, reference.columns[n], current.columns[n]) for n in names if n in reference.columns]
    assessed = [r for r in results if r.drifted is not None]
    share = sum(r.drifted for r in assessed) / len(assessed) if assessed else 0.0  # type: ignore[misc]
    return DriftResult(
        columns=results,
        share_drifted=share,
        dataset_drift=bool(assessed) and share >= DATASET_DRIFT_SHARE,
        drift_share_threshold=DATASET_DRIFT_SHARE,
        reference_rows=reference_rows,
        current_rows=current_rows,
    )


def _union_distinct(reference: ColumnSketch, current: ColumnSketch) -> int | None:
    if reference.values is None or current.values is None:
        return None
    return len(np.union1d(reference.values, current.values))


def _aligned(reference: ColumnSketch, current: ColumnSketch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union of distinct values, and each dataset's count of every one."""
    keys = np.union1d(reference.values, current.values)  # type: ignore[arg-type]
    ref_counts = np.zeros(len(keys))
    cur_counts = np.zeros(len(keys))
    ref_counts[np.searchsorted(keys, reference.values)] = reference.counts  # type: ignore[arg-type]
    cur_counts[np.searchsorted(keys, current.values)] = current.counts  # type: ignore[arg-type]
    return keys, ref_counts, cur_counts


def _histograms(reference: ColumnSketch, current: ColumnSketch) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Bin centres, both histograms and the bin width, for a column without exact counts."""
    width = (reference.high - reference.low) / HISTOGRAM_BINS
    centres = reference.low + (np.arange(HISTOGRAM_BINS) + 0.5) * width
    return centres, reference.histogram.astype(float), current.histogram.astype(float), width  # type: ignore[union-attr]


def _ks(result: ColumnDrift, reference: ColumnSketch, current: ColumnSketch) -> None:
    from scipy.stats import distributions
    from scipy.stats._stats_py import _attempt_exact_2kssamp  # scipy's own exact path, as ks_2samp takes it

    if reference.exact and current.exact:
        _, ref_counts, cur_counts = _aligned(reference, current)
        bound = 0.0
    else:
        _, ref_counts, cur_counts, _ = _histograms(reference, current)
        bound = float(max(ref_counts.max() / reference.count, cur_counts.max() / current.count))
        result.approximate = True
    n1, n2 = reference.count, current.count
    statistic = float(np.max(np.abs(np.cumsum(ref_counts) / n1 - np.cumsum(cur_counts) / n2)))
    if max(n1, n2) <= 10_000:
        success, statistic, p_value = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), statistic, "two-sided")
    else:
        success = False
    if not success:
        en = n1 * n2 / (n1 + n2)
        p_value = distributions.kstwo.sf(statistic, np.round(en))
    _set(result, "K-S p_value", float(np.clip(p_value, 0, 1)), 0.05, p_value_test=True)
    result.error_bound = bound if result.approximate else None


def _wasserstein(result: ColumnDrift, reference: ColumnSketch, current: ColumnSketch) -> None:
    if reference.exact and current.exact:
        keys, ref_counts, cur_counts = _aligned(reference, current)
        norm = max(reference.std_exact(), 0.001)
        width = 0.0
    else:
        keys, ref_counts, cur_counts, width = _histograms(reference, current)
        norm = max(reference.std, 0.001)
        result.approximate = True
    cdf_gap = np.abs(np.cumsum(ref_counts) / reference.count - np.cumsum(cur_counts) / current.count)[:-1]
    distance = float(np.dot(cdf_gap, np.diff(keys)))
    _set(result, "Wasserstein distance (normed)", distance / norm, 0.1, p_value_test=False)
    # Each value moves at most half a bin in either dataset: W1 moves at most one bin width.
    result.error_bound = width / norm if result.approximate else None


def _frequencies(reference: ColumnSketch, current: ColumnSketch) -> tuple[np.ndarray, np.ndarray]:
    _, ref_counts, cur_counts = _aligned(reference, current)
    return ref_counts, cur_counts


def _jensen_shannon(result: ColumnDrift, reference: ColumnSketch, current: ColumnSketch) -> None:
    from scipy.spatial import distance

    if not (reference.exact and current.exact):
        result.note = f"more than {EXACT_DISTINCT_LIMIT} categories: not assessed"
        return
    ref_counts, cur_counts = _frequencies(reference, current)
    score = float(distance.jensenshannon(ref_counts / reference.count, cur_counts / current.count))
    _set(result, "Jensen-Shannon distance", score, 0.1, p_value_test=False)


def _chi_square(result: ColumnDrift, reference: ColumnSketch, current: ColumnSketch) -> None:
    from scipy.stats import chisquare

    if not (reference.exact and current.exact):
        result.note = f"more than {EXACT_DISTINCT_LIMIT} categories: not assessed"
        return
    ref_counts, cur_counts = _frequencies(reference, current)
    expected = ref_counts * (current.count / reference.count)
    # A category the reference never had expects 0: the statistic is infinite and p is 0, as in Evidently.
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = float(chisquare(cur_counts, expected)[1])
    _set(result, "chi-square p_value", p_value, 0.05, p_value_test=True)


def _z_test(result: ColumnDrift, reference: ColumnSketch, current: ColumnSketch) -> None:
    from scipy.stats import norm

    ref_counts, cur_counts = _frequencies(reference, current)
    if len(ref_counts) == 1:
        p_value = 1.0
    else:
        # Evidently codes the first of the sorted values as 0 and the other as 1.
        p1 = ref_counts[1] / reference.count
        p2 = cur_counts[1] / current.count
        pooled = (ref_counts[1] + cur_counts[1]) / (reference.count + current.count)
        z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / reference.count + 1 / current.count))
        p_value = float(2 * (1 - norm.cdf(abs(z))))
    _set(result, "Z-test p_value", p_value, 0.05, p_value_test=True)


def _set(result: ColumnDrift, stattest: str, score: float, threshold: float, *, p_value_test: bool) -> None:
    result.stattest, result.score, result.threshold = stattest, score, threshold
    result.drifted = bool(score < threshold) if p_value_test else bool(score >= threshold)


def _psi(reference: ColumnSketch, current: ColumnSketch) -> float | None:
    """PSI as Evidently computes it, with a zero share replaced by a tiny one as it does."""
    if reference.numerical and (reference.distinct is None or reference.distinct > 20):
        if not (reference.exact and current.exact):
            centres, ref_hist, cur_hist, _ = _histograms(reference, current)
            data_low, data_high = _support(centres, ref_hist + cur_hist)
            ref_percents = _rebin(centres, ref_hist, data_low, data_high, reference.count + current.count)
            cur_percents = _rebin(centres, cur_hist, data_low, data_high, reference.count + current.count)
        else:
            keys, ref_counts, cur_counts = _aligned(reference, current)
            total = reference.count + current.count
            ref_percents = _rebin(keys, ref_counts, keys[0], keys[-1], total)
            cur_percents = _rebin(keys, cur_counts, keys[0], keys[-1], total)
        ref_percents, cur_percents = ref_percents / reference.count, cur_percents / current.count
    else:
        if not (reference.exact and current.exact):
            return None
        ref_counts, cur_counts = _frequencies(reference, current)
        ref_percents, cur_percents = ref_counts / reference.count, cur_counts / current.count
    ref_percents, cur_percents = _fill_zeroes(ref_percents), _fill_zeroes(cur_percents)
    return float(np.sum((ref_percents - cur_percents) * np.log(ref_percents / cur_percents)))


def _support(centres: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    occupied = np.flatnonzero(counts)
    return float(centres[occupied[0]]), float(centres[occupied[-1]])


def _rebin(values: np.ndarray, counts: np.ndarray, low: float, high: float, size: int) -> np.ndarray:
    """Counts per Sturges bin over [low, high], as numpy.histogram_bin_edges(..., 'sturges') cuts it."""
    span = high - low
    if span == 0:
        return np.array([counts.sum()], dtype=float)
    width = span / (np.log2(size) + 1.0)
    bins = int(np.ceil(span / width))
    edges = np.linspace(low, high, bins + 1)
    return np.histogram(values, edges, weights=counts)[0].astype(float)


def _fill_zeroes(percents: np.ndarray) -> np.ndarray:
    nonzero = percents[percents != 0]
    if len(nonzero) == 0:
        return percents
    smallest = nonzero.min()
    filled = percents.copy()
    np.place(filled, filled == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return filled


def split_column_types(
    frame: pd.DataFrame, columns: list[str], *, categorical_columns: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Numerical columns (numbers other than booleans, unless declared categorical) and categorical ones."""
    declared = set(categorical_columns)
    numerical, categorical = [], []
    for column in columns:
        series = frame[column]
        if column in declared:
            categorical.append(column)
        elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numerical.append(column)
        else:
            categorical.append(column)
    return numerical, categorical
