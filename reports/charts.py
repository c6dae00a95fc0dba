"""Charts of a report, drawn on the server as SVG (inline in the HTML, and so in the PDF).

Each chart takes the report's published data, after small-cell suppression: a suppressed group is never
drawn. matplotlib is imported here only, when a report is generated.
"""

from __future__ import annotations

import io
from typing import Any

# Colour-blind-safe pair (Okabe-Ito) for pass and breach.
PASS_COLOUR, FAIL_COLOUR, BAND_COLOUR = "#0072B2", "#D55E00", "#E8F1FA"


def _svg(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def _figure(rows: int) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update({"svg.hashsalt": "governance-report", "font.size": 9, "svg.fonttype": "path"})
    return plt.subplots(figsize=(7.0, 0.9 + 0.28 * rows))


def disparity_forest(disparities: list[dict[str, Any]], *, metric: str, bound: dict[str, Any] | None) -> str | None:
    """Each single-attribute group's disparity against its reference, with its 95% interval and the accepted band."""
    rows = [
        d
        for d in disparities
        if d["metric"] == metric and "&" not in d["attribute"] and not d.get("suppressed") and d["value"] is not None
    ]
    if not rows:
        return None
    figure, axes = _figure(len(rows))
    labels = [f"{d['attribute']} = {d['group']} vs {d['reference']}" for d in rows]
    positions = list(range(len(rows)))[::-1]
    if bound and bound.get("low") is not None and bound.get("high") is not None:
        axes.axvspan(bound["low"], bound["high"], color=BAND_COLOUR, zorder=0, label="accepted range")
    neutral = 1.0 if metric == "disparate_impact" else 0.0
    axes.axvline(neutral, color="#57606a", linewidth=0.8)
    for position, row in zip(positions, rows, strict=True):
        colour = FAIL_COLOUR if row["status"] == "fail" else PASS_COLOUR
        if row["ci"]:
            axes.plot(row["ci"], [position, position], color=colour, linewidth=2)
        axes.plot([row["value"]], [position], "o", color=colour)
    axes.set_yticks(positions, labels)
    axes.set_xlabel(f"{metric.replace('_', ' ')} (95% interval; orange: outside the policy)")
    axes.grid(axis="x", color="#d0d7de", linewidth=0.5)
    return _svg(figure)


def group_rates(groups: list[dict[str, Any]], *, metrics: tuple[str, ...]) -> str | None:
    """Rates of each single-attribute group with their 95% intervals, one marker per metric."""
    rows = [g for g in groups if "&" not in g["attribute"] and not g.get("suppressed")]
    if not rows:
        return None
    figure, axes = _figure(len(rows))
    labels = [f"{g['attribute']} = {g['group']}" + (" (ref.)" if g["is_reference"] else "") for g in rows]
    positions = list(range(len(rows)))[::-1]
    markers = ("o", "s", "^", "D")
    colours = (PASS_COLOUR, FAIL_COLOUR, "#009E73", "#CC79A7")
    for index, metric in enumerate(metrics):
        offset = (index - (len(metrics) - 1) / 2) * 0.18
        for position, group in zip(positions, rows, strict=True):
            value, interval = group.get(metric), (group.get("ci") or {}).get(metric)
            if value is None:
                continue
            y = position + offset
            if interval:
                axes.plot(interval, [y, y], color=colours[index], linewidth=1.5)
            axes.plot(
                [value],
                [y],
                markers[index],
                color=colours[index],
                label=metric.replace("_", " ") if position == positions[0] else None,
            )
    axes.set_yticks(positions, labels)
    axes.set_xlim(0, 1)
    axes.legend(loc="lower right", fontsize=8, frameon=False)
    axes.grid(axis="x", color="#d0d7de", linewidth=0.5)
    return _svg(figure)


def report_charts(data: dict[str, Any]) -> dict[str, str | None]:
    """The charts of an audit report, from its published (suppressed) data."""
    result = data.get("result") or {}
    fairness = result.get("fairness") or {"groups": [], "disparities": []}
    bounds = (result.get("policy") or {}).get("bounds") or {}
    return {
        "disparate_impact": disparity_forest(
            fairness["disparities"], metric="disparate_impact", bound=bounds.get("disparate_impact")
        ),
        "equal_opportunity": disparity_forest(
            fairness["disparities"],
            metric="equal_opportunity_difference",
            bound=bounds.get("equal_opportunity_difference"),
        ),
        "rates": group_rates(
            fairness["groups"], metrics=("true_positive_rate", "false_positive_rate", "selection_rate")
        ),
    }


def trend_chart(series: list[dict[str, Any]], *, metric: str, bound: dict[str, Any] | None) -> str | None:
    """A metric of each group over the period's windows, with its 95% band and the policy's accepted range."""
    from datetime import datetime

    drawn = [entry for entry in series if len(entry["points"]) >= 1]
    if not drawn:
        return None
    figure, axes = _figure(8)
    if bound and bound.get("low") is not None and bound.get("high") is not None:
        axes.axhspan(bound["low"], bound["high"], color=BAND_COLOUR, zorder=0, label="accepted range")
    for entry in drawn:
        times = [datetime.fromisoformat(p["at"]) for p in entry["points"]]
        values = [p["value"] for p in entry["points"]]
        label = f"{entry['attribute']} = {entry['group']}"
        (line,) = axes.plot(times, values, marker="o", markersize=3, linewidth=1, label=label)
        lows = [p["ci_low"] if p["ci_low"] is not None else p["value"] for p in entry["points"]]
        highs = [p["ci_high"] if p["ci_high"] is not None else p["value"] for p in entry["points"]]
        axes.fill_between(times, lows, highs, color=line.get_color(), alpha=0.12, linewidth=0)
    _pad_single_day(axes, [datetime.fromisoformat(p["at"]) for entry in drawn for p in entry["points"]])
    axes.set_ylabel(metric.replace("_", " "))
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    axes.grid(color="#d0d7de", linewidth=0.5)
    figure.autofmt_xdate()
    return _svg(figure)


def run_history_chart(runs: list[dict[str, Any]]) -> str | None:
    """Share of drifted columns and the largest missing share, run by run over the period."""
    from datetime import datetime

    points = [r for r in runs if r["share_drifted"] is not None or r["max_missing_share"] is not None]
    if not points:
        return None
    figure, axes = _figure(6)
    times = [datetime.fromisoformat(r["at"]) for r in points]
    axes.plot(
        times, [r["share_drifted"] for r in points], marker="o", color=FAIL_COLOUR, label="share of drifted columns"
    )
    axes.plot(
        times, [r["max_missing_share"] for r in points], marker="s", color=PASS_COLOUR, label="largest missing share"
    )
    axes.axhline(0.5, color=FAIL_COLOUR, linewidth=0.6, linestyle="--", label="dataset drift at half the columns")
    _pad_single_day(axes, times)
    axes.set_ylim(0, 1)
    axes.legend(loc="upper left", fontsize=7, frameon=False)
    axes.grid(color="#d0d7de", linewidth=0.5)
    figure.autofmt_xdate()
    return _svg(figure)


def _pad_single_day(axes: Any, times: list[Any]) -> None:
    """With every point at one moment, show the day around it rather than matplotlib's default years."""
    from datetime import timedelta

    if times and max(times) - min(times) < timedelta(days=1):
        axes.set_xlim(min(times) - timedelta(days=1), max(times) + timedelta(days=1))


def trend_charts(data: dict[str, Any]) -> dict[str, str | None]:
    """The charts of a monitoring report, from its published data."""
    charts = {
        metric: trend_chart(trend["series"], metric=metric, bound=trend.get("bound"))
        for metric, trend in data["trends"].items()
    }
    charts["history"] = run_history_chart(data["runs"])
    return charts
