"""The CHAI Applied Model Card of a model version, from the registry, its HTI-1 attributes and a finished audit."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from audits.models import AuditRun
from governance.models import ModelVersion
from governance.services import ServiceError
from reports.services.hti1 import hti1_profile
from reports.services.runs import report_data_for_run, suppress_small_cells

# Per-group figures of each single protected attribute that the card reports, by CHAI metric family.
USEFULNESS = (("auroc", "AUROC"), ("accuracy", "accuracy"), ("true_positive_rate", "sensitivity"))
FAIRNESS = ("disparate_impact", "equal_opportunity_difference", "statistical_parity_difference")
SAFETY = (("calibration_in_the_large", "calibration-in-the-large"), ("calibration_slope", "calibration slope"))
BIBLIOGRAPHY = (
    "Bellamy R.K.E. et al. AI Fairness 360 (aif360): metric definitions and signs. IBM Research, 2018. "
    "Newcombe R.G. Interval estimation for the difference between independent proportions. Stat Med 1998. "
    "Katz D. et al. Obtaining confidence intervals for the risk ratio in cohort studies. Biometrics 1978. "
    "DeLong E.R. et al. Comparing the areas under two or more correlated ROC curves. Biometrics 1988. "
    "Obermeyer Z. et al. Dissecting racial bias in an algorithm used to manage the health of populations. "
    "Science 2019. Evidently AI: data drift tests and thresholds (DataDriftPreset)."
)


def _estimate(value: Any, interval: Any, **extra: Any) -> dict[str, Any]:
    return {"value": value, "ci95": interval, **extra}


def _key_metrics(data: dict[str, Any], dataset: str) -> dict[str, Any]:
    result = data["result"]
    fairness = result["fairness"]
    single = [g for g in fairness["groups"] if "&" not in g["attribute"] and not g.get("suppressed")]
    usefulness = [
        (f"{name}, {g['attribute']} = {g['group']}", _estimate(g[metric], g["ci"].get(metric), n=g["n"]))
        for g in single
        for metric, name in USEFULNESS
        if g.get(metric) is not None
    ]
    equity = [
        (
            f"{d['metric'].replace('_', ' ')}, {d['attribute']} = {d['group']} against {d['reference']}",
            _estimate(d["value"], d["ci"], p_value_adjusted=d["p_value"], status=d["status"]),
        )
        for d in fairness["disparities"]
        if d["metric"] in FAIRNESS and "&" not in d["attribute"] and not d.get("suppressed") and d["value"] is not None
    ]
    safety = [
        (f"{name}, {g['attribute']} = {g['group']}", _estimate(g[metric], g["ci"].get(metric), n=g["n"]))
        for g in single
        for metric, name in SAFETY
        if g.get(metric) is not None
    ]
    drift = result.get("drift")
    if drift:
        safety.append(
            ("share of drifted columns", {"value": drift["share_drifted"], "dataset_drift": drift["dataset_drift"]})
        )
    quality = result["quality"]
    if quality.get("duplicate_share") is not None:
        safety.append(("duplicate row share", {"value": quality["duplicate_share"]}))
    policy = result["policy"]
    judged = "; ".join(f"{f['severity']}: {f['message']}" for f in result["findings"] if f["category"] == "fairness")
    validation = (
        f"Retrospective audit by the governance service ({data['audit_run']['finished_at']}), each figure with its "
        f"95% interval ({', '.join(f'{k}: {v}' for k, v in fairness['methods'].items() if isinstance(v, str))}); "
        f"groups under {policy['min_group_size']} people are not judged and groups of 1 to "
        f"{data['suppression']['threshold']} are not published."
    )
    return {
        "UsefulnessUsabilityEfficacy": {
            "goal": "Discrimination and accuracy in every group of each protected attribute",
            "results": usefulness,
            "Interpretation": f"Verdict under the model's policy: {result['verdict']}.",
            "TestType": "Retrospective evaluation on a frozen dataset",
            "TestingDataDescription": dataset,
            "ValidationProcessAndJustification": validation,
        },
        "FairnessEquity": {
            "goal": "Group parity within the accepted ranges of the model's audit policy (four-fifths rule both ways "
            "for disparate impact; parity differences within 0.1 by default)",
            "results": equity,
            "Interpretation": judged or "No fairness finding breaches the policy.",
            "TestType": "Group fairness audit against the reference group (aif360 definitions)",
            "TestingDataDescription": dataset,
            "ValidationProcessAndJustification": validation,
        },
        "SafetyReliability": {
            "goal": "Calibration in every group, stable inputs against the reference population, clean data",
            "results": safety,
            "Interpretation": "Calibration-in-the-large near 0 and slope near 1 mean the score's probabilities hold "
            "in that group; drifted columns mean the population or the data pipeline has changed.",
            "TestType": "Calibration by group; drift tests chosen as Evidently chooses them; data quality checks",
            "TestingDataDescription": dataset,
            "ValidationProcessAndJustification": validation,
        },
    }


def model_card_document(*, model_version: ModelVersion, run: AuditRun | None = None) -> dict[str, Any]:
    """Everything the card says: registry facts, HTI-1 attributes, and the published figures of one audit.

    1. The run is the one given, else the version's latest succeeded audit; without one there is no card.
    2. Its figures pass through the reports' small-cell suppression before any is put on the card.
    """
    if run is None:
        run = model_version.audit_runs.filter(status=AuditRun.Status.SUCCEEDED).order_by("-finished_at").first()
    if run is None or run.status != AuditRun.Status.SUCCEEDED:
        raise ServiceError(
            f"version {model_version.version} has no succeeded audit to take the card's key metrics from", status=409
        )
    ai_model = model_version.ai_model
    data = suppress_small_cells(report_data_for_run(run), threshold=settings.REPORT_SMALL_CELL_THRESHOLD)
    hti1 = {row["key"]: row["value"] for row in hti1_profile(ai_model)["attributes"]}
    dataset = data["dataset"]
    dataset_text = (
        f"{dataset['name']}: {dataset['rows']} rows, sha256 {dataset['sha256']}"
        + (f", {dataset['period_start']} to {dataset['period_end']}" if dataset["period_start"] else "")
        + (f". {dataset['description']}" if dataset["description"] else "")
    )
    critical = [f["message"] for f in data["result"]["findings"] if f["severity"] == "critical"]
    owner = ai_model.owner
    released = model_version.stage_changed_at or model_version.created_at
    return {
        "basic_info": {
            "ModelName": ai_model.name,
            "ModelDeveloper": hti1["developer"] or ai_model.organization.name,
            "DeveloperContact": hti1["developer"] or (owner.email if owner is not None else None),
        },
        "release_info": {
            "ReleaseStage": model_version.get_stage_display(),
            "ReleaseDate": released.date().isoformat(),
            "ReleaseVersion": model_version.version,
            "GlobalAvailability": None,
        },
        "summary": ai_model.intended_use,
        "keywords": [
            "clinical decision support",
            f"decision role: {ai_model.get_decision_role_display().lower()}",
            f"clinical risk: {ai_model.get_clinical_risk_level_display().lower()}",
        ],
        "uses_and_directions": {
            "IntendedUseAndWorkflow": ai_model.intended_use,
            "PrimaryIntendedUsers": ai_model.intended_users,
            "HowToUse": hti1["output_description"],
            "TargetedPatientPopulation": ai_model.target_population,
            "CautionedOutOfScopeSettings": ai_model.out_of_scope_uses,
        },
        "warnings": {
            "KnownRisksAndLimitations": hti1["known_risks"],
            "KnownBiasesOrEthicalConsiderations": " ".join(critical)
            if critical
            else "The audit found no critical breach of the fairness policy.",
            "ClinicalRiskLevel": ai_model.get_clinical_risk_level_display(),
        },
        "ai_system_facts": {
            "OutcomesAndOutputs": hti1["output_type"],
            "ModelType": model_version.artifact_uri or None,
            "InputDataSource": hti1["training_criteria"],
            "OutputAndInputDataTypes": hti1["output_type"],
            "DevelopmentDataCharacterization": hti1["training_representativeness"] or hti1["demographic_inputs"],
            "BiasMitigationApproaches": hti1["bias_management"] or hti1["fairness_approach"],
            "OngoingMaintenance": hti1["validity_monitoring"],
        },
        "transparency": {"FundingSource": hti1["funding_source"], "StakeholdersConsulted": None},
        "key_metrics": _key_metrics(data, dataset_text),
        "resources": {
            "EvaluationReferences": f"Audit run {run.pk} (/api/v1/audits/{run.pk}/), "
            f"dataset sha256 {dataset['sha256']}",
            "PeerReviewedPublications": hti1["outcome_evaluation"],
            "PatientConsentOrDisclosure": None,
        },
        "bibliography": BIBLIOGRAPHY,
        "run": run.pk,
    }
