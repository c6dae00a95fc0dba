"""Label-choice audit, after Obermeyer et al. (Science 2019).

A score trained on a proxy label (cost, utilisation) can be calibrated for that proxy in every
group and still under-serve a group whose need, at the same score, is greater. Given an
alternative outcome that measures need directly (e.g. the number of active chronic
conditions), this compares its mean between groups within bins of the score.

Statistics, mergeable over chunks: per group and per score cell (1/LABEL_CHOICE_CELLS of the
score's range), the count, the sum and the sum of squares of the alternative outcome. The score
is cut into quantile bins (deciles by default) of the whole population at cell resolution, so a
bin edge falls on a cell edge and bins may differ slightly in size where many people share a
cell. Within each bin, a group's mean is compared with the reference group's; the gap at equal
score is the average of those within-bin gaps weighted by the group's own distribution over the
bins (standardisation), with a normal 95% interval from the within-bin variances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from audits.engines.scores import SCORE_BINS, score_positions
from audits.engines.stats import Z_95, normal_p_value
from audits.engines.tables import group_codes

LABEL_CHOICE_CELLS = 1000


@dataclass
class CellSums:
    count: np.ndarray = field(default_factory=lambda: np.zeros(LABEL_CHOICE_CELLS + 1, dtype=np.int64))
    total: np.ndarray = field(default_factory=lambda: np.zeros(LABEL_CHOICE_CELLS + 1))
    squares: np.ndarray = field(default_factory=lambda: np.zeros(LABEL_CHOICE_CELLS + 1))

    def __add__(self, other: CellSums) -> CellSums:
        return CellSums(self.count + other.count, self.total + other.total, self.squares + other.squares)


@dataclass
class LabelChoiceStatistics:
    groups: dict[str, dict[str, CellSums]] = field(default_factory=dict)

    def merge(self, other: LabelChoiceStatistics) -> LabelChoiceStatistics:
        merged = {a: dict(g) for a, g in self.groups.items()}
        for attribute, groups in other.groups.items():
            target = merged.setdefault(attribute, {})
            for name, sums in groups.items():
                target[name] = target[name] + sums if name in target else sums
        return LabelChoiceStatistics(merged)


def label_choice_statistics(
    frame: pd.DataFrame, *, score: str, alternative_outcome: str, protected: list[str], score_is_probability: bool
) -> LabelChoiceStatistics:
    """Per protected attribute and group, the alternative outcome's count, sum and sum of squares per score cell."""
    positions = score_positions(frame[score].to_numpy(dtype=float), is_probability=score_is_probability)
    cells = positions * LABEL_CHOICE_CELLS // SCORE_BINS
    outcome = frame[alternative_outcome].to_numpy(dtype=float)
    known = ~np.isnan(outcome)
    result: dict[str, dict[str, CellSums]] = {}
    for attribute in protected:
        codes, names = group_codes(frame[attribute])
        by_group: dict[str, CellSums] = {}
        for index, name in enumerate(names):
            members = (codes == index) & known
            member_cells, member_values = cells[members], outcome[members]
            by_group[str(name)] = CellSums(
                np.bincount(member_cells, minlength=LABEL_CHOICE_CELLS + 1),
                np.bincount(member_cells, weights=member_values, minlength=LABEL_CHOICE_CELLS + 1),
                np.bincount(member_cells, weights=member_values**2, minlength=LABEL_CHOICE_CELLS + 1),
            )
        result[attribute] = by_group
    return LabelChoiceStatistics(result)


def _bin_of_cells(population: np.ndarray, bins: int) -> np.ndarray:
    """Assign each score cell to a quantile bin of the population (cells are never split)."""
    cumulative = np.cumsum(population)
    total = cumulative[-1]
    # A cell belongs to the bin in which its first member falls.
    before = cumulative - population
    return np.minimum((before * bins // max(total, 1)).astype(np.int64), bins - 1)


def _mean_and_variance(sums: CellSums, members: np.ndarray) -> tuple[int, float | None, float | None]:
    n = int(sums.count[members].sum())
    if n == 0:
        return 0, None, None
    total, squares = float(sums.total[members].sum()), float(sums.squares[members].sum())
    mean = total / n
    variance = max(squares / n - mean * mean, 0.0) * n / (n - 1) if n > 1 else None
    return n, mean, variance


def label_choice_report(
    statistics: LabelChoiceStatistics,
    *,
    references: dict[str, str],
    alternative_outcome: str,
    bins: int = 10,
    min_group_size: int = 30,
) -> dict[str, Any]:
    """Mean need per score bin and group, and each group's gap against the reference at equal score."""
    bin_tables: list[dict[str, Any]] = []
    gaps: list[dict[str, Any]] = []
    for attribute, by_group in statistics.groups.items():
        population = sum((s.count for s in by_group.values()), np.zeros(LABEL_CHOICE_CELLS + 1, dtype=np.int64))
        cell_bin = _bin_of_cells(population, bins)
        cell_edges = np.arange(LABEL_CHOICE_CELLS + 1) / LABEL_CHOICE_CELLS
        summaries: dict[str, list[tuple[int, float | None, float | None]]] = {}
        for name, sums in by_group.items():
            rows = []
            summaries[name] = []
            for b in range(bins):
                members = cell_bin == b
                n, mean, variance = _mean_and_variance(sums, members)
                summaries[name].append((n, mean, variance))
                occupied = members & (population > 0)
                half = Z_95 * math.sqrt(variance / n) if variance is not None and n > 0 else None
                rows.append(
                    {
                        "bin": b + 1,
                        "score_low": float(cell_edges[occupied].min()) if occupied.any() else None,
                        "score_high": float(cell_edges[occupied].max()) if occupied.any() else None,
                        "n": n,
                        "mean": mean,
                        "ci": [mean - half, mean + half] if half is not None and mean is not None else None,
                    }
                )
            bin_tables.append({"attribute": attribute, "group": name, "bins": rows})
        reference = references.get(attribute) or max(by_group, key=lambda g: (int(by_group[g].count.sum()), g))
        for name in by_group:
            if name != reference:
                gaps.append(_gap(attribute, name, reference, summaries[name], summaries[reference], min_group_size))
    return {
        "alternative_outcome": alternative_outcome,
        "bins": bins,
        "groups": bin_tables,
        "gaps": gaps,
        "method": "mean of the alternative outcome within score quantile bins of the whole population; the gap "
        "at equal score averages the within-bin differences (group minus reference), weighted by the group's "
        "distribution over the bins, with a normal 95% interval",
    }


def _gap(
    attribute: str,
    group: str,
    reference: str,
    mine: list[tuple[int, float | None, float | None]],
    theirs: list[tuple[int, float | None, float | None]],
    min_group_size: int,
) -> dict[str, Any]:
    usable: list[tuple[int, float, float, int, float, float]] = []
    for (n_a, mean_a, var_a), (n_b, mean_b, var_b) in zip(mine, theirs, strict=True):
        if n_a > 1 and n_b > 1 and None not in (mean_a, var_a, mean_b, var_b):
            usable.append((n_a, mean_a, var_a, n_b, mean_b, var_b))  # type: ignore[arg-type]
    n_group = sum(a[0] for a in mine)
    n_reference = sum(b[0] for b in theirs)
    record: dict[str, Any] = {
        "attribute": attribute,
        "group": group,
        "reference": reference,
        "gap": None,
        "ci": None,
        "p_value": None,
        "n": n_group,
        "reference_n": n_reference,
        "bins_compared": len(usable),
        "status": "insufficient_data",
    }
    weight_total = sum(u[0] for u in usable)
    if not usable or min(n_group, n_reference) < min_group_size:
        return record
    gap = sum(n_a / weight_total * (mean_a - mean_b) for n_a, mean_a, _, _, mean_b, _ in usable)
    variance = sum((n_a / weight_total) ** 2 * (var_a / n_a + var_b / n_b) for n_a, _, var_a, n_b, _, var_b in usable)
    half = Z_95 * math.sqrt(variance)
    record.update(gap=gap, ci=[gap - half, gap + half], p_value=normal_p_value(gap, 0.0, math.sqrt(variance)))
    record["status"] = "fail" if gap - half > 0 or gap + half < 0 else "pass"
    return record
