"""Errors the audit services raise for the user to read."""


class AuditInputError(Exception):
    """The run's data cannot be audited as asked; the message says why, for the user."""
