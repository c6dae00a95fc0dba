"""Data quality of a dataset, alone and against its reference.

Mergeable statistics per chunk: row count, missing values per column (overall and per protected
group), one 64-bit hash per row (duplicates), and a profile per column: minimum and maximum of a
numeric column, value counts of a categorical one (up to PROFILE_MAX_DISTINCT values, beyond
which the column counts as high-cardinality and unseen categories are not assessed). Against a
reference profile: schema changes, values outside the reference's range, categories the
reference never had, and groups whose missingness differs from the reference group's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from audits.engines.stats import newcombe_interval, two_proportion_p_value
from audits.engines.tables import group_codes

PROFILE_MAX_DISTINCT = 1000
UNSEEN_VALUES_LISTED = 10


@dataclass
class ColumnProfile:
    numeric: bool
    non_null: int = 0
    minimum: float | None = None
    maximum: float | None = None
    non_finite: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    overflow: bool = False
    # Values outside the reference's range, counted when the reference range was known.
    below_reference: int = 0
    above_reference: int = 0

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        counts = dict(self.counts)
        for value, count in other.counts.items():
            counts[value] = counts.get(value, 0) + count
        overflow = self.overflow or other.overflow or len(counts) > PROFILE_MAX_DISTINCT
        return ColumnProfile(
            numeric=self.numeric and other.numeric,
            non_null=self.non_null + other.non_null,
            minimum=_pick(min, self.minimum, other.minimum),
            maximum=_pick(max, self.maximum, other.maximum),
            non_finite=self.non_finite + other.non_finite,
            counts={} if overflow else counts,
            overflow=overflow,
            below_reference=self.below_reference + other.below_reference,
            above_reference=self.above_reference + other.above_reference,
        )

    @property
    def distinct(self) -> int | None:
        if self.numeric or self.overflow:
            return None
        return len(self.counts)


def _pick(function: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(function(a, b))


@dataclass
class QualityStatistics:
    rows: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    row_hashes: list[np.ndarray] = field(default_factory=list)
    profiles: dict[str, ColumnProfile] = field(default_factory=dict)
    group_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    group_missing: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def merge(self, other: QualityStatistics) -> QualityStatistics:
        missing = dict(self.missing)
        for column, count in other.missing.items():
            missing[column] = missing.get(column, 0) + count
        profiles = dict(self.profiles)
        for column, profile in other.profiles.items():
            profiles[column] = profiles[column].merge(profile) if column in profiles else profile
        group_rows = {a: dict(g) for a, g in self.group_rows.items()}
        for attribute, groups in other.group_rows.items():
            for group, count in groups.items():
                group_rows.setdefault(attribute, {})[group] = group_rows.get(attribute, {}).get(group, 0) + count
        group_missing = {a: {g: dict(c) for g, c in by_group.items()} for a, by_group in self.group_missing.items()}
        for attribute, missing_by_group in other.group_missing.items():
            for group, columns in missing_by_group.items():
                target = group_missing.setdefault(attribute, {}).setdefault(group, {})
                for column, count in columns.items():
                    target[column] = target.get(column, 0) + count
        return QualityStatistics(
            self.rows + other.rows,
            missing,
            [*self.row_hashes, *other.row_hashes],
            profiles,
            group_rows,
            group_missing,
        )


def quality_statistics(
    frame: pd.DataFrame,
    *,
    protected: Iterable[str] = (),
    reference_ranges: dict[str, tuple[float, float]] | None = None,
    hash_rows: bool = True,
) -> QualityStatistics:
    """Missing values, row hashes, column profiles and per-group missingness of one chunk."""
    missing_mask = frame.isna()
    missing = {str(column): int(count) for column, count in missing_mask.sum().items()}
    hashes = [pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)] if hash_rows else []
    profiles = {str(c): _profile(frame[c], (reference_ranges or {}).get(str(c))) for c in frame.columns}
    group_rows: dict[str, dict[str, int]] = {}
    group_missing: dict[str, dict[str, dict[str, int]]] = {}
    columns_with_missing = [c for c, count in missing.items() if count]
    for attribute in protected:
        codes, names = group_codes(frame[attribute])
        sizes = np.bincount(codes, minlength=len(names))
        group_rows[attribute] = {name: int(size) for name, size in zip(names, sizes, strict=True)}
        others = [c for c in columns_with_missing if c != attribute]
        if others:
            group_missing[attribute] = {name: {} for name in names}
            for column in others:
                per_group = np.bincount(codes, weights=missing_mask[column].to_numpy(), minlength=len(names))
                for name, count in zip(names, per_group, strict=True):
                    if count:
                        group_missing[attribute][name][column] = int(count)
    return QualityStatistics(len(frame), missing, hashes, profiles, group_rows, group_missing)


def _profile(series: pd.Series, reference_range: tuple[float, float] | None) -> ColumnProfile:
    values = series.dropna()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = values.to_numpy(dtype=float)
        finite = numbers[np.isfinite(numbers)]
        profile = ColumnProfile(
            numeric=True,
            non_null=len(numbers),
            minimum=float(finite.min()) if len(finite) else None,
            maximum=float(finite.max()) if len(finite) else None,
            non_finite=int(len(numbers) - len(finite)),
        )
        if reference_range is not None:
            profile.below_reference = int((finite < reference_range[0]).sum())
            profile.above_reference = int((finite > reference_range[1]).sum())
        return profile
    counts = values.value_counts(sort=False)
    if len(counts) > PROFILE_MAX_DISTINCT:
        return ColumnProfile(numeric=False, non_null=len(values), overflow=True)
    return ColumnProfile(numeric=False, non_null=len(values), counts={str(k): int(v) for k, v in counts.items()})


def reference_ranges(reference: QualityStatistics) -> dict[str, tuple[float, float]]:
    """The range of every numeric reference column, for counting current values outside it."""
    return {
        column: (profile.minimum, profile.maximum)
        for column, profile in reference.profiles.items()
        if profile.numeric and profile.minimum is not None and profile.maximum is not None
    }


def merge_ranges(parts: Iterable[dict[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """The ranges of a dataset from those of its parts: `reference_ranges` of the merged statistics."""
    merged: dict[str, tuple[float, float]] = {}
    for ranges in parts:
        for column, (low, high) in ranges.items():
            known = merged.get(column)
            merged[column] = (low, high) if known is None else (min(known[0], low), max(known[1], high))
    return merged


@dataclass
class ColumnQuality:
    column: str
    missing: int
    missing_share: float
    distinct: int | None
    constant: bool
    non_finite: int = 0
    out_of_range: int | None = None
    out_of_range_share: float | None = None
    unseen_categories: int | None = None  # distinct values the reference never had
    unseen_rows: int | None = None
    unseen_share: float | None = None
    unseen_examples: list[str] = field(default_factory=list)


@dataclass
class QualityResult:
    rows: int
    columns: list[ColumnQuality]
    duplicate_rows: int
    duplicate_share: float
    schema: dict[str, Any] | None = None
    differential_missingness: list[dict[str, Any]] = field(default_factory=list)
    identifiers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": [asdict(c) for c in self.columns],
            "duplicate_rows": self.duplicate_rows,
            "duplicate_share": self.duplicate_share,
            "schema": self.schema,
            "differential_missingness": self.differential_missingness,
            "identifiers": self.identifiers,
        }


def quality_report(
    statistics: QualityStatistics,
    *,
    reference: QualityStatistics | None = None,
    schema: list[dict[str, str]] | None = None,
    reference_schema: list[dict[str, str]] | None = None,
    references: dict[str, str] | None = None,
    identifiers: list[dict[str, Any]] | None = None,
) -> QualityResult:
    """The quality figures of a dataset, and its differences from the reference where one is given."""
    rows = statistics.rows
    hashes = np.concatenate(statistics.row_hashes) if statistics.row_hashes else np.empty(0, dtype=np.uint64)
    # 64-bit row hashes: the chance of a false duplicate among 10M rows is about 3e-6.
    duplicates = int(len(hashes) - len(np.unique(hashes)))
    columns = [
        _column_quality(column, count, rows, statistics.profiles.get(column), reference)
        for column, count in statistics.missing.items()
    ]
    return QualityResult(
        rows=rows,
        columns=columns,
        duplicate_rows=duplicates,
        duplicate_share=duplicates / rows if rows else 0.0,
        schema=schema_changes(schema, reference_schema) if schema and reference_schema else None,
        differential_missingness=_differential_missingness(statistics, references or {}),
        identifiers=list(identifiers or []),
    )


def _column_quality(
    column: str, missing: int, rows: int, profile: ColumnProfile | None, reference: QualityStatistics | None
) -> ColumnQuality:
    quality = ColumnQuality(column, missing, missing / rows if rows else 0.0, None, False)
    if profile is None:
        return quality
    quality.distinct = profile.distinct
    quality.non_finite = profile.non_finite
    quality.constant = profile.non_null > 0 and (
        profile.minimum == profile.maximum if profile.numeric else (not profile.overflow and len(profile.counts) == 1)
    )
    reference_profile = reference.profiles.get(column) if reference else None
    if reference_profile is None or profile.non_null == 0:
        return quality
    if profile.numeric and reference_profile.numeric and reference_profile.minimum is not None:
        quality.out_of_range = profile.below_reference + profile.above_reference
        quality.out_of_range_share = quality.out_of_range / profile.non_null
    elif not profile.numeric and not profile.overflow and not reference_profile.overflow:
        unseen = {v: c for v, c in profile.counts.items() if v not in reference_profile.counts}
        quality.unseen_categories = len(unseen)
        quality.unseen_rows = sum(unseen.values())
        quality.unseen_share = quality.unseen_rows / profile.non_null
        quality.unseen_examples = sorted(unseen, key=lambda v: -unseen[v])[:UNSEEN_VALUES_LISTED]
    return quality


def schema_changes(schema: list[dict[str, str]], reference_schema: list[dict[str, str]]) -> dict[str, Any]:
    """Columns the current data lacks or adds, and columns whose type changed, against the reference."""
    current = {c["name"]: c["dtype"] for c in schema}
    reference = {c["name"]: c["dtype"] for c in reference_schema}
    return {
        "missing_columns": [c for c in reference if c not in current],
        "new_columns": [c for c in current if c not in reference],
        "type_changes": [
            {"column": c, "reference": reference[c], "current": current[c]}
            for c in current
            if c in reference and _type_family(current[c]) != _type_family(reference[c])
        ],
    }


def _type_family(dtype: str) -> str:
    """int64 and int32, or double and float, are the same kind of column; string and int are not."""
    for family, prefixes in (
        ("integer", ("int", "uint")),
        ("float", ("double", "float", "halffloat", "decimal")),
        ("string", ("string", "large_string", "dictionary")),
        ("boolean", ("bool",)),
        ("temporal", ("timestamp", "date", "time", "duration")),
    ):
        if dtype.startswith(prefixes):
            return family
    return dtype


def _differential_missingness(statistics: QualityStatistics, references: dict[str, str]) -> list[dict[str, Any]]:
    """Each group's missing share of each column against the reference group's, with Newcombe intervals."""
    results = []
    for attribute, groups in statistics.group_rows.items():
        reference = references.get(attribute) or max(groups, key=lambda g: (groups[g], g))
        missing_by_group = statistics.group_missing.get(attribute, {})
        columns = sorted({c for counts in missing_by_group.values() for c in counts})
        for column in columns:
            reference_missing = missing_by_group.get(reference, {}).get(column, 0)
            for group, size in groups.items():
                if group == reference:
                    continue
                group_missing = missing_by_group.get(group, {}).get(column, 0)
                interval = newcombe_interval(group_missing, size, reference_missing, groups[reference])
                results.append(
                    {
                        "attribute": attribute,
                        "group": group,
                        "reference": reference,
                        "column": column,
                        "missing_share": group_missing / size if size else None,
                        "reference_missing_share": reference_missing / groups[reference] if groups[reference] else None,
                        "difference": (group_missing / size - reference_missing / groups[reference])
                        if size and groups[reference]
                        else None,
                        "ci": list(interval) if interval else None,
                        "p_value": two_proportion_p_value(group_missing, size, reference_missing, groups[reference]),
                        "n": size,
                        "reference_n": groups[reference],
                    }
                )
    return results
