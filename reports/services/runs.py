"""Generating reports from finished audit runs."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.template.loader import render_to_string
from django.utils import timezone

from audits.models import AuditRun
from governance.models import APPROVE_ROLES, WRITE_ROLES, GovernanceEvent
from governance.selectors import role_in
from governance.services import ServiceError, event_record, require_role
from reports.models import Report, SignOff


def report_content_sha256(html: str, data: dict[str, Any]) -> str:
    """The hash a report is identified by: its HTML, then its data as canonical JSON."""
    digest = hashlib.sha256(html.encode("utf-8"))
    digest.update(b"\n")
    digest.update(json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return digest.hexdigest()


def report_data_for_run(run: AuditRun) -> dict[str, Any]:
    """Everything the report cites, copied from the registry and the run, so it never changes later."""
    version = run.model_version
    ai_model = version.ai_model

    def dataset_facts(dataset: Any) -> dict[str, Any] | None:
        if dataset is None:
            return None
        return {
            "id": dataset.pk,
            "name": dataset.name,
            "kind": dataset.kind,
            "description": dataset.description,
            "period_start": dataset.period_start.isoformat() if dataset.period_start else None,
            "period_end": dataset.period_end.isoformat() if dataset.period_end else None,
            "rows": dataset.row_count,
            "sha256": dataset.sha256,
            "original_filename": dataset.original_filename,
        }

    result = copy.deepcopy(run.result) if run.result else run.result
    if result:
        # The review status of each finding when the report was made (triage goes on after).
        reviews = {}
        for row in run.findings.prefetch_related("reviews__reviewed_by"):
            decisions = list(row.reviews.all())
            last = decisions[-1] if decisions else None
            note = ""
            if last is not None and last.justification:
                who = last.reviewed_by.get_username() if last.reviewed_by else "unknown"
                note = f"{last.justification} ({who}, {last.reviewed_at:%Y-%m-%d})"
            reviews[(row.metric, row.attribute, row.group, row.column, row.message)] = (
                row.get_review_status_display(),
                note,
            )
        for finding in result.get("findings", []):
            key = (finding["metric"], finding["attribute"], finding["group"], finding["column"], finding["message"])
            finding["review_status"], finding["review_note"] = reviews.get(key, ("Open", ""))
    lifecycle = GovernanceEvent.objects.filter(
        object_type="governance.modelversion", object_id=str(version.pk)
    ).select_related("actor")
    return {
        "report_schema_version": 2,
        "generated_at": timezone.now().isoformat(),
        "organization": {"name": run.organization.name, "slug": run.organization.slug},
        "model": {
            "name": ai_model.name,
            "slug": ai_model.slug,
            "intended_use": ai_model.intended_use,
            "intended_users": ai_model.intended_users,
            "target_population": ai_model.target_population,
            "decision_role": ai_model.decision_role,
            "clinical_risk_level": ai_model.clinical_risk_level,
            "out_of_scope_uses": ai_model.out_of_scope_uses,
        },
        "model_version": {
            "version": version.version,
            "stage": version.stage,
            "artifact_uri": version.artifact_uri,
            "artifact_sha256": version.artifact_sha256,
        },
        "audit_run": {
            "id": run.pk,
            "status": run.status,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
        "dataset": dataset_facts(run.dataset),
        "reference_dataset": dataset_facts(run.reference_dataset),
        "lifecycle": [
            {
                "action": e.action,
                "at": e.created_at.isoformat(),
                "by": e.actor.get_username() if e.actor else None,
                "before": e.before,
                "after": e.after,
            }
            for e in lifecycle.order_by("created_at", "id")
        ],
        "result": result,
    }


def suppress_small_cells(data: dict[str, Any], *, threshold: int) -> dict[str, Any]:
    """Hide groups of 1..threshold people, and every figure derived from them, in published data.

    1. Primary suppression: every group whose n is between 1 and threshold.
    2. Complementary suppression: the attribute's total is published, so a lone suppressed
       group could be worked back by subtraction; the next smallest group is hidden with it.
    3. Cell suppression: in a group large enough to publish, a rate can still reveal a small
       count (5 positives among 200 people: base rate 0.025 with n 200). Every count a published
       rate implies (positives, negatives, flagged, not flagged, correct, the four confusion
       cells) is worked out as an attacker would; a group with one in 1..threshold keeps its n
       and loses every rate and score metric, with a complementary group per attribute.
    4. Every disparity of a hidden group, or against a hidden reference group, is hidden,
       and so is every finding about a hidden group.
    """
    result = copy.deepcopy(data.get("result") or {})
    fairness = result.get("fairness") or {"groups": [], "disparities": []}
    by_attribute: dict[str, list[dict[str, Any]]] = {}
    for group in fairness["groups"]:
        by_attribute.setdefault(group["attribute"], []).append(group)
    hidden: set[tuple[str, str]] = set()
    complementary = 0
    for attribute, groups in by_attribute.items():
        small = [g for g in groups if 1 <= g["n"] <= threshold]
        hidden.update((attribute, g["group"]) for g in small)
        if len(small) == 1:
            rest = sorted((g for g in groups if g not in small), key=lambda g: (g["is_reference"], g["n"]))
            if rest:
                hidden.add((attribute, rest[0]["group"]))
                complementary += 1
    cells_hidden = _small_cell_groups(by_attribute, hidden, threshold)
    for group in fairness["groups"]:
        where = (group["attribute"], group["group"])
        group["suppressed"] = where in hidden
        group["cells_suppressed"] = where in cells_hidden
        if group["suppressed"] or group["cells_suppressed"]:
            kept = {"attribute", "group", "is_reference", "suppressed", "cells_suppressed"}
            if not group["suppressed"]:
                kept.add("n")
            for name in list(group):
                if name not in kept:
                    group[name] = None
    hidden_figures = hidden | cells_hidden
    for disparity in fairness["disparities"]:
        disparity["suppressed"] = (disparity["attribute"], disparity["group"]) in hidden_figures or (
            disparity["attribute"],
            disparity["reference"],
        ) in hidden_figures
        if disparity["suppressed"]:
            for key in ("value", "ci", "p_value", "p_value_unadjusted", "n", "reference_n"):
                disparity[key] = None
    # A finding about a hidden group would name its size or its figures.
    result["findings"] = [f for f in result.get("findings", []) if (f["attribute"], f["group"]) not in hidden_figures]
    # Drift of the label within a group would give its share of positives: hidden with the rates.
    for entry in (result.get("drift") or {}).get("by_group", []):
        if (entry.get("attribute"), entry.get("group")) in cells_hidden:
            entry.update(columns=[], status="suppressed")
    _suppress_other_sections(result, threshold)

    return {
        **data,
        "result": result,
        "representativeness": _representativeness(data, result, hidden, threshold),
        "suppression": {
            "threshold": threshold,
            "suppressed_groups": len(hidden),
            "complementary": complementary,
            "groups_with_small_cells": len(cells_hidden),
        },
    }


def implied_counts(group: dict[str, Any]) -> dict[str, int]:
    """The counts a group's published rates give away, given its n: what an attacker can work out."""
    n = group.get("n")
    if not n:
        return {}
    counts: dict[str, float] = {}
    base, selection, accuracy = group.get("base_rate"), group.get("selection_rate"), group.get("accuracy")
    if base is not None:
        positives, negatives = base * n, n - base * n
        counts.update(positives=positives, negatives=negatives)
        for rate, denominator, cell in (
            ("true_positive_rate", positives, "true_positives"),
            ("false_negative_rate", positives, "false_negatives"),
            ("false_positive_rate", negatives, "false_positives"),
        ):
            if group.get(rate) is not None:
                counts[cell] = group[rate] * denominator
        if group.get("false_positive_rate") is not None:
            counts["true_negatives"] = negatives - counts["false_positives"]
    if selection is not None:
        flagged, not_flagged = selection * n, n - selection * n
        counts.update(flagged=flagged, not_flagged=not_flagged)
        if group.get("positive_predictive_value") is not None:
            counts["true_positives_from_ppv"] = group["positive_predictive_value"] * flagged
        if group.get("negative_predictive_value") is not None:
            counts["true_negatives_from_npv"] = group["negative_predictive_value"] * not_flagged
    if accuracy is not None:
        counts.update(correct=accuracy * n, incorrect=n - accuracy * n)
    return {name: round(value) for name, value in counts.items()}


def _small_cell_groups(
    by_attribute: dict[str, list[dict[str, Any]]], hidden: set[tuple[str, str]], threshold: int
) -> set[tuple[str, str]]:
    """Publishable groups whose rates would reveal a count of 1..threshold, with a complementary group each."""
    flagged: set[tuple[str, str]] = set()
    for attribute, groups in by_attribute.items():
        shown = [g for g in groups if (attribute, g["group"]) not in hidden]
        small = [g for g in shown if any(_small(c, threshold) for c in implied_counts(g).values())]
        flagged.update((attribute, g["group"]) for g in small)
        if len(small) == 1:
            # Pooled figures of the attribute (an overall accuracy, say) minus the other groups' would
            # give the lone group's counts back: a second group is hidden with it.
            rest = sorted((g for g in shown if g not in small), key=lambda g: (g["is_reference"], g["n"]))
            if rest:
                flagged.add((attribute, rest[0]["group"]))
    return flagged


def _representativeness(
    data: dict[str, Any], result: dict[str, Any], hidden: set[tuple[str, str]], threshold: int
) -> list[dict[str, Any]]:
    """Each protected group's share of the audited data against its share of the reference population.

    The groups are those of the audited data; their size in the reference comes from the drift statistics
    within groups (0 where the reference has no such group), so only with a reference dataset. A group
    hidden in the fairness tables (small, or complementary to a small one) is hidden here too.
    """
    reference, current = data.get("reference_dataset"), data.get("dataset")
    if not reference or not current or not result.get("drift"):
        return []
    in_reference = {(e["attribute"], e["group"]): e["reference_rows"] for e in result["drift"].get("by_group", [])}
    rows = []
    for group in (result.get("fairness") or {}).get("groups", []):
        key = (group["attribute"], group["group"])
        if "&" in key[0]:
            continue
        reference_rows = in_reference.get(key, 0)
        if key in hidden or group.get("suppressed") or reference_rows is None or _small(reference_rows, threshold):
            rows.append({"attribute": key[0], "group": key[1], "suppressed": True})
            continue
        rows.append(
            {
                "attribute": key[0],
                "group": key[1],
                "suppressed": False,
                "reference_rows": reference_rows,
                "current_rows": group["n"],
                "reference_share": reference_rows / reference["rows"],
                "current_share": group["n"] / current["rows"],
            }
        )
    return rows


def _small(count: Any, threshold: int) -> bool:
    return isinstance(count, int | float) and 1 <= count <= threshold


def _suppress_other_sections(result: dict[str, Any], threshold: int) -> None:
    """Small cells outside the fairness tables: label choice, drift within groups, quality counts.

    Label-choice bins are not published (their per-bin counts are small by construction); a
    gap is published only between groups larger than the threshold. Drift within a group of
    1..threshold rows, and any quality count of 1..threshold rows (with the shares that
    reveal it), are hidden.
    """
    label_choice = result.get("label_choice")
    if label_choice:
        label_choice["groups"] = []
        for gap in label_choice["gaps"]:
            if _small(gap["n"], threshold) or _small(gap["reference_n"], threshold):
                gap.update(gap=None, ci=None, p_value=None, n=None, reference_n=None, suppressed=True)
    drift = result.get("drift") or {}
    for group in drift.get("by_group", []):
        if _small(group["reference_rows"], threshold) or _small(group["current_rows"], threshold):
            group.update(columns=[], reference_rows=None, current_rows=None, status="suppressed")
    quality = result.get("quality") or {}
    for column in quality.get("columns", []):
        if _small(column.get("missing"), threshold):
            column.update(missing=None, missing_share=None)
        if _small(column.get("out_of_range"), threshold):
            column.update(out_of_range=None, out_of_range_share=None)
        if _small(column.get("unseen_rows"), threshold):
            column.update(unseen_rows=None, unseen_share=None, unseen_categories=None, unseen_examples=[])
    if _small(quality.get("duplicate_rows"), threshold):
        quality.update(duplicate_rows=None, duplicate_share=None)
    for row in quality.get("differential_missingness", []):
        counts = [row["n"], row["reference_n"]]
        for share, n in ((row["missing_share"], row["n"]), (row["reference_missing_share"], row["reference_n"])):
            if share is not None and n:
                counts.append(round(share * n))
        if any(_small(c, threshold) for c in counts):
            row.update(
                missing_share=None,
                reference_missing_share=None,
                difference=None,
                ci=None,
                p_value=None,
                n=None,
                reference_n=None,
                suppressed=True,
            )


def report_context(title: str, data: dict[str, Any]) -> dict[str, Any]:
    """What the template needs besides the data: the findings, the charts, the bounds and software versions."""
    from reports.charts import report_charts

    result = data.get("result") or {}
    versions = sorted((result.get("engine_versions") or {}).items())
    bounds = sorted(((result.get("policy") or {}).get("bounds") or {}).items())
    return {
        "title": title,
        "data": data,
        "findings": result.get("findings", []),
        "engine_versions": versions,
        "charts": report_charts(data),
        "bounds": bounds,
    }


@transaction.atomic
def report_generate_for_run(*, run: AuditRun, actor: Any) -> Report:
    """Freeze a report of a finished run as a new version, with the sha256 of its content."""
    require_role(actor, run.organization, WRITE_ROLES, doing="Generating a report")
    if run.status != AuditRun.Status.SUCCEEDED:
        raise ServiceError(f"audit run {run.pk} is {run.status}; only a succeeded run can be reported", status=409)
    data = suppress_small_cells(report_data_for_run(run), threshold=settings.REPORT_SMALL_CELL_THRESHOLD)
    title = f"Audit of {data['model']['name']} {data['model_version']['version']} (run {run.pk})"
    html = render_to_string("reports/audit_report.html", report_context(title, data))
    latest = Report.objects.filter(audit_run=run).aggregate(v=Max("version"))["v"] or 0
    return report_freeze(
        organization=run.organization,
        actor=actor,
        version=latest + 1,
        title=title,
        html=html,
        data=data,
        cites={"audit_run": run},
    )


def report_freeze(
    *, organization: Any, actor: Any, version: int, title: str, html: str, data: dict[str, Any], cites: dict[str, Any]
) -> Report:
    """Store a rendered report once, with the sha256 of its content, and record the event.

    `cites` names what the report is of: an audit run, or a model and a period (with its kind).
    """
    report = Report.objects.create(
        organization=organization,
        version=version,
        title=title,
        html=html,
        data=data,
        sha256=report_content_sha256(html, data),
        created_by=actor if getattr(actor, "pk", None) else None,
        **cites,
    )
    event_record(
        organization=organization,
        actor=actor,
        action="report.generated",
        obj=report,
        after={
            "sha256": report.sha256,
            "version": report.version,
            "kind": report.kind,
            "audit_run": report.audit_run_id,
            "period": [str(report.period_start), str(report.period_end)] if report.period_start else None,
        },
    )
    return report


@transaction.atomic
def report_sign(*, report: Report, actor: Any, statement: str) -> SignOff:
    """Sign a report version as an approver, bound to its hash.

    1. Only an approver or admin of the report's organization signs, once per report version.
    2. The stored content must still match its sha256: a report that fails verification is not signed.
    3. Record the sign-off with the hash and the signer's role, the event, and the `report.signed` webhook.
    """
    from governance.webhooks import webhook_event_emit

    require_role(actor, report.organization, APPROVE_ROLES, doing="Signing a report")
    statement = statement.strip()
    if len(statement) < 10:
        raise ServiceError("write what you attest (at least 10 characters)", field="statement")
    locked = Report.objects.select_for_update().get(pk=report.pk)
    if report_content_sha256(locked.html, locked.data) != locked.sha256:
        raise ServiceError(
            f"report {locked.pk} no longer matches its sha256 {locked.sha256}; it cannot be signed "
            "(regenerate it from its run)",
            status=409,
        )
    if SignOff.objects.filter(report=locked, signed_by=actor).exists():
        raise ServiceError(f"you have already signed report {locked.pk}", status=409)
    sign_off = SignOff.objects.create(
        report=locked,
        signed_by=actor,
        role=role_in(actor, locked.organization) or ("superuser" if getattr(actor, "is_superuser", False) else ""),
        statement=statement,
        report_sha256=locked.sha256,
    )
    event_record(
        organization=locked.organization,
        actor=actor,
        action="report.signed",
        obj=sign_off,
        after={"report": locked.pk, "sha256": locked.sha256, "role": sign_off.role},
    )
    webhook_event_emit(
        organization=locked.organization,
        event="report.signed",
        payload={
            "report": locked.pk,
            "version": locked.version,
            "sha256": locked.sha256,
            "audit_run": locked.audit_run_id,
            "signed_by": actor.get_username(),
            "role": sign_off.role,
            "signed_at": sign_off.signed_at.isoformat(),
        },
    )
    return sign_off
