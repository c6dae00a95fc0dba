"""Writes of the reports app: reports of runs and their sign-offs, and the regulatory profiles of models."""

from reports.services.annex_iv import annex_iv_document
from reports.services.hti1 import hti1_profile, source_attribute_record
from reports.services.model_card import model_card_document
from reports.services.monitoring import monitoring_report_generate, monthly_reports_generate
from reports.services.runs import (
    report_content_sha256,
    report_data_for_run,
    report_generate_for_run,
    report_sign,
    suppress_small_cells,
)

__all__ = [
    "annex_iv_document",
    "hti1_profile",
    "model_card_document",
    "monitoring_report_generate",
    "monthly_reports_generate",
    "report_content_sha256",
    "report_data_for_run",
    "report_generate_for_run",
    "report_sign",
    "source_attribute_record",
    "suppress_small_cells",
]
