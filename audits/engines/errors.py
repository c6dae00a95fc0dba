"""Errors of the engines that a user can act on; importable without the heavy libraries."""

from __future__ import annotations


class TableError(ValueError):
    """A problem with a user's file or its column roles, worded for that user."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column
