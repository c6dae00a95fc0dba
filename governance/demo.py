"""The demo: a real 30-day readmission model on the Diabetes 130-US hospitals data.

1. Read the shipped sample, derive the label and an age band, split by encounter id
   (earlier encounters are the reference period, later ones the current period).
2. Train a scikit-learn model on the reference period and score both periods.
3. Register the organization, model and version; upload both periods as datasets
   through the same service the API uses; queue an audit of the current period
   against the reference.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from audits.models import AuditRun
from audits.services import audit_run_create
from governance import services
from governance.models import AIModel, ApiToken, Dataset, Membership, ModelVersion, Organization, Role

SAMPLE = Path(__file__).parent / "demo_data" / "diabetes_130_sample.csv.gz"
ORGANIZATION_SLUG = "demo-hospital"
MODEL_SLUG = "readmission-30d"
NUMERIC_FEATURES = [
    "time_in_hospital",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    "number_diagnoses",
]
CATEGORICAL_FEATURES = [
    "admission_type_id",
    "discharge_disposition_id",
    "admission_source_id",
    "A1Cresult",
    "max_glu_serum",
    "insulin",
    "change",
    "diabetesMed",
    "age",
]
# Numeric codes (admission type, discharge disposition, admission source), not quantities.
CODED_FEATURES = ["admission_type_id", "discharge_disposition_id", "admission_source_id"]
# The model flags this share of reference-period encounters as high risk.
FLAGGED_SHARE = 0.2


@dataclass
class Demo:
    organization: Organization
    ai_model: AIModel
    version: ModelVersion
    reference: Dataset
    current: Dataset
    run: AuditRun


def demo_frames() -> tuple[Any, Any, Any]:
    """The reference and current periods, scored by a model trained on the reference; and the model."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    raw = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).sort_values("encounter_id", key=lambda s: s.astype(int))
    frame = pd.DataFrame(
        {
            # The join key of the production stream; not uploaded with the datasets.
            "encounter_id": raw["encounter_id"].astype(int),
            "race": raw["race"].replace("?", np.nan),
            "gender": raw["gender"],
            "age_band": raw["age"].map(_age_band),
            "readmitted_30d": (raw["readmitted"] == "<30").astype(int),
            # Alternative outcome (a direct measure of need): the number of diagnoses recorded.
            "diagnoses_count": raw["number_diagnoses"].astype(int),
        }
    )
    for column in NUMERIC_FEATURES:
        frame[column] = raw[column].astype(int)
    for column in CATEGORICAL_FEATURES:
        frame[column] = raw[column]
    frame = frame.reset_index(drop=True)
    cut = int(len(frame) * 0.6)
    reference, current = frame.iloc[:cut].copy(), frame.iloc[cut:].copy()

    model = make_pipeline(
        ColumnTransformer(
            [
                ("numeric", StandardScaler(), NUMERIC_FEATURES),
                ("categorical", OneHotEncoder(handle_unknown="ignore", min_frequency=20), CATEGORICAL_FEATURES),
            ]
        ),
        LogisticRegression(max_iter=2000, class_weight="balanced"),
    )
    features = NUMERIC_FEATURES + CATEGORICAL_FEATURES
    model.fit(reference[features], reference["readmitted_30d"])
    for part in (reference, current):
        part["risk_score"] = model.predict_proba(part[features])[:, 1].round(6)
    threshold = float(np.quantile(reference["risk_score"], 1 - FLAGGED_SHARE))
    for part in (reference, current):
        part["high_risk"] = (part["risk_score"] >= threshold).astype(int)
    return reference, current, model


def _age_band(age: str) -> str:
    lower = int(age.strip("[)").split("-")[0])
    if lower < 60:
        return "under 60"
    return "60-79" if lower < 80 else "80 and over"


def column_roles() -> dict[str, Any]:
    return {
        "label": "readmitted_30d",
        "prediction": "high_risk",
        "score": "risk_score",
        "protected": [
            {"column": "race", "reference": "Caucasian"},
            {"column": "gender", "reference": "Female"},
            {"column": "age_band", "reference": None},
        ],
        "features": NUMERIC_FEATURES + CATEGORICAL_FEATURES,
        "categorical": CODED_FEATURES,
        "alternative_outcome": "diagnoses_count",
    }


def demo_admin(*, username: str = "admin") -> tuple[Any, str]:
    """The demo's superuser, with a fresh random password (printed by rundemo)."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username, defaults={"email": "admin@example.org"})
    password = secrets.token_urlsafe(12)
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return user, password


DEMO_MEMBERS = (("committee-chair", Role.APPROVER), ("ward-nurse", Role.VIEWER))


def demo_members(*, organization: Organization, actor: Any) -> list[tuple[str, str, str]]:
    """Two committee members besides the superuser, to try the roles: (username, role, fresh password)."""
    user_model = get_user_model()
    members = []
    for username, role in DEMO_MEMBERS:
        user, _ = user_model.objects.get_or_create(username=username, defaults={"email": f"{username}@example.org"})
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.save()
        if not Membership.objects.filter(user=user, organization=organization, role=role).exists():
            services.membership_set(organization=organization, user=user, role=role, actor=actor)
        members.append((username, str(role.label), password))
    return members


def demo_token(*, organization: Organization, user: Any) -> str:
    """A new write-scoped API token for the demo admin; earlier demo tokens are revoked."""
    for token in ApiToken.objects.filter(organization=organization, user=user, name="demo", revoked_at__isnull=True):
        services.api_token_revoke(token=token, actor=user)
    _, plaintext = services.api_token_create(
        organization=organization, user=user, name="demo", scope=ApiToken.Scope.WRITE, actor=user
    )
    return plaintext


def load_demo(*, actor: Any) -> Demo:
    """Register the demo model and its data, and queue an audit (reuses what an earlier run loaded)."""
    organization = Organization.objects.filter(slug=ORGANIZATION_SLUG).first()
    if organization is None:
        organization = services.organization_create(name="Demo Hospital", slug=ORGANIZATION_SLUG, creator=actor)
    Membership.objects.get_or_create(user=actor, organization=organization, defaults={"role": Role.ADMIN})
    ai_model = AIModel.objects.filter(organization=organization, slug=MODEL_SLUG).first()
    if ai_model is not None:
        version = ai_model.versions.get(version="1.0.0")
        reference = Dataset.objects.get(ai_model=ai_model, kind=Dataset.Kind.REFERENCE)
        current = Dataset.objects.get(ai_model=ai_model, kind=Dataset.Kind.PRODUCTION)
        run = AuditRun.objects.filter(model_version=version).order_by("-created_at").first()
        if run is None or run.status == AuditRun.Status.FAILED:
            run = audit_run_create(model_version=version, dataset=current, reference_dataset=reference, actor=actor)
        return Demo(organization, ai_model, version, reference, current, run)

    reference_frame, current_frame, model = demo_frames()
    with transaction.atomic():
        ai_model = services.ai_model_create(
            organization=organization,
            actor=actor,
            name="30-day readmission risk",
            slug=MODEL_SLUG,
            intended_use="Flag adult inpatients with diabetes at high risk of readmission within 30 days of "
            "discharge, so that care managers can offer a transitional-care follow-up.",
            intended_users="Care managers and discharge planners",
            target_population="Adult inpatients with a diabetes diagnosis, stays of 1 to 14 days",
            decision_role=AIModel.DecisionRole.INFORMS,
            clinical_risk_level=AIModel.RiskLevel.MODERATE,
            out_of_scope_uses="Not for denying or rationing care; not validated for paediatric patients, "
            "for patients discharged to hospice, or outside US acute-care hospitals.",
            status=AIModel.Status.ACTIVE,
        )
        artifact = _model_artifact(model)
        version = services.model_version_create(
            ai_model=ai_model,
            version="1.0.0",
            actor=actor,
            artifact_uri=artifact[0],
            artifact_sha256=artifact[1],
            notes="Logistic regression on utilisation and treatment features, trained at demo time.",
        )
        services.model_version_transition(model_version=version, to_stage=ModelVersion.Stage.VALIDATION, actor=actor)
        reference = _upload(
            organization, ai_model, actor, reference_frame, "Reference period (training)", Dataset.Kind.REFERENCE
        )
        current = _upload(
            organization, ai_model, actor, current_frame, "Current period (later encounters)", Dataset.Kind.PRODUCTION
        )
        run = audit_run_create(model_version=version, dataset=current, reference_dataset=reference, actor=actor)
        _monitoring(version, actor, current_frame)
    return Demo(organization, ai_model, version, reference, current, run)


def _monitoring(version: ModelVersion, actor: Any, current_frame: Any) -> None:
    """The current period as the version's production stream, outcomes arriving later for 90% of encounters,
    and a weekly audit of the last 7 days of the stream, first due now."""
    import numpy as np

    from audits.services.schedules import audit_schedule_create
    from audits.services.stream import prediction_batch_upload

    predictions = current_frame.drop(columns=["readmitted_30d"])
    known = np.random.default_rng(130).random(len(current_frame)) < 0.9
    outcomes = current_frame.loc[known, ["encounter_id", "readmitted_30d"]]
    stream_roles = {k: v for k, v in column_roles().items() if k not in ("label", "alternative_outcome")}
    for kind, frame, roles in (
        ("predictions", predictions, {**stream_roles, "record_id": "encounter_id"}),
        ("outcomes", outcomes, {"record_id": "encounter_id", "label": "readmitted_30d"}),
    ):
        prediction_batch_upload(
            model_version=version,
            kind=kind,
            file=io.BytesIO(frame.to_csv(index=False).encode("utf-8")),
            filename=f"stream-{kind}.csv",
            column_roles=roles,
            actor=actor,
        )
    audit_schedule_create(
        ai_model=version.ai_model,
        actor=actor,
        start_now=True,
        name="Weekly production audit",
        model_version=version,
        cron="0 6 * * 1",
        timezone="America/New_York",
        window_days=7,
    )


def _model_artifact(model: Any) -> tuple[str, str]:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    payload = buffer.getvalue()
    name = default_storage.save("models/demo/readmission-30d-1.0.0.joblib", ContentFile(payload))
    return f"storage://{name}", hashlib.sha256(payload).hexdigest()


def _upload(organization: Organization, ai_model: AIModel, actor: Any, frame: Any, name: str, kind: str) -> Dataset:
    buffer = io.BytesIO(frame.drop(columns=["encounter_id"]).to_csv(index=False).encode("utf-8"))
    return services.dataset_upload(
        organization=organization,
        ai_model=ai_model,
        name=name,
        kind=kind,
        description="Diabetes 130-US hospitals 1999-2008 (Strack et al. 2014, UCI, CC BY 4.0), a 30,000-encounter "
        "sample; split by encounter id, earlier 60% reference, later 40% current.",
        file=buffer,
        filename=f"{kind}.csv",
        column_roles=column_roles(),
        actor=actor,
    )
