from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def metric(value: Any, digits: int = 3) -> str:
    """A metric for display: fixed digits, and an em dash where it is undefined."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


@register.filter
def percent(value: Any) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}%"


@register.filter
def share_difference(share: Any, other: Any) -> str:
    """Two shares' difference in percentage points, signed."""
    if share is None or other is None:
        return "—"
    return f"{100 * (share - other):+.1f} pp"


@register.filter
def words(value: Any) -> str:
    """A snake_case name as words: "rate_differences" -> "rate differences"."""
    return str(value).replace("_", " ")
