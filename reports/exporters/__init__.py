"""Exports of reports and regulatory profiles: pure functions from the service's documents to files."""
