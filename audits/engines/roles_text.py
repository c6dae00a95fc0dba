"""Column roles written as text, as the admin form and the command line take them. No heavy imports."""

from __future__ import annotations


def split_names(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']."""
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_protected(text: str) -> list[dict[str, str | None]]:
    """'race=White,sex' -> [{'column': 'race', 'reference': 'White'}, {'column': 'sex', 'reference': None}]."""
    protected: list[dict[str, str | None]] = []
    for item in split_names(text):
        column, _, reference = item.partition("=")
        protected.append({"column": column.strip(), "reference": reference.strip() or None})
    return protected
