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
