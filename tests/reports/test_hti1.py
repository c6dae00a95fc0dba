"""ONC HTI-1 source attributes: the 31, recorded by reviewers or derived from the registry and the audits."""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest

from audits.services import audit_run_create, audit_run_execute
from governance.models import GovernanceEvent
from reports.hti1 import ATTRIBUTES
from tests.conftest import client_for, clinical_frame, upload_frame

pytestmark = pytest.mark.django_db


def test_the_catalogue_has_the_31_attributes_of_the_rule_in_its_9_groups() -> None:
    assert len(ATTRIBUTES) == 31 and len({a.key for a in ATTRIBUTES}) == 31
    assert [Counter(a.group for a in ATTRIBUTES)[g] for g in range(1, 10)] == [4, 4, 2, 4, 2, 4, 5, 4, 2]


def test_validity_and_fairness_are_filled_from_the_latest_evaluation_audit(team, model_version, media_root) -> None:
    ai_model = model_version.ai_model
    ai_model.target_population = "Adult inpatients"
    ai_model.save()
    frame = clinical_frame(4000, seed=17)
    upload_frame(team, clinical_frame(3000, seed=18), name="training", kind="reference", ai_model=ai_model)
    evaluation = upload_frame(team, frame, name="held-out", kind="evaluation", ai_model=ai_model)
    run = audit_run_create(model_version=model_version, dataset=evaluation, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="test")

    body = client_for(team.viewer, team.organization, scope="read").get(f"/api/v1/models/{ai_model.pk}/hti1/").json()
    rows = {row["key"]: row for row in body["attributes"]}
    assert rows["intended_population"] == {
        **rows["intended_population"],
        "value": "Adult inpatients",
        "source": "registry",
    }
    # Accuracy computed here from the rows themselves, independently of the engines.
    accuracy = (frame["sepsis"] == frame["alert"]).mean()
    validity = rows["validity_internal"]
    assert validity["source"] == "audit" and validity["evidence"] == f"/api/v1/audits/{run.pk}/"
    assert f"accuracy {accuracy:.3f} over 4000 rows" in validity["value"]
    assert rows["fairness_internal"]["value"].startswith(f"Audit run {run.pk} of version {model_version.version}")
    assert "verdict fail" in rows["fairness_internal"]["value"]
    assert rows["demographic_inputs"]["value"].startswith("Of the audited characteristics (race, sex), used as model")
    assert rows["output_type"]["value"] == "a risk score and a binary class (0/1)"
    assert rows["validity_local"]["source"] == "missing" and rows["funding_source"]["source"] == "missing"
    filled = sum(1 for row in body["attributes"] if row["value"])
    assert body["completeness"] == {"filled": filled, "of": 31, "recorded": 0, "derived": filled}


def test_a_recorded_value_wins_names_its_reviewer_and_can_be_withdrawn_without_being_lost(team, model_version) -> None:
    ai_model = model_version.ai_model
    url = f"/api/v1/models/{ai_model.pk}/hti1/intended_use/"
    owner = client_for(team.owner, team.organization)
    recorded = owner.put(url, {"value": "Flag sepsis risk at 6-hourly vitals", "evidence": "SOP-12"}, format="json")
    assert recorded.status_code == 200
    row = next(r for r in recorded.json()["attributes"] if r["key"] == "intended_use")
    assert (row["value"], row["source"], row["reviewed_by"]) == (
        "Flag sepsis risk at 6-hourly vitals",
        "recorded",
        "olivia",
    )
    assert recorded.json()["completeness"]["recorded"] == 1

    withdrawn = owner.put(url, {"value": ""}, format="json").json()
    row = next(r for r in withdrawn["attributes"] if r["key"] == "intended_use")
    assert (row["value"], row["source"]) == (ai_model.intended_use, "registry")
    event = GovernanceEvent.objects.get(action="hti1_attribute.withdrawn")
    assert event.before == {"key": "intended_use", "value": "Flag sepsis risk at 6-hourly vitals", "evidence": "SOP-12"}

    assert client_for(team.viewer, team.organization).put(url, {"value": "x"}, format="json").status_code == 403
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.put(url, {"value": "x"}, format="json").status_code == 404
    unknown = owner.put(f"/api/v1/models/{ai_model.pk}/hti1/favourite_colour/", {"value": "x"}, format="json")
    assert unknown.status_code == 400 and "unknown HTI-1 attribute" in unknown.json()["detail"]


def test_the_csv_export_has_a_row_per_attribute_and_defuses_formulas(team, model_version) -> None:
    ai_model = model_version.ai_model
    owner = client_for(team.owner, team.organization)
    owner.put(
        f"/api/v1/models/{ai_model.pk}/hti1/developer/",
        {"value": '=HYPERLINK("http://evil.example","click")', "evidence": "+1 555"},
        format="json",
    )
    response = owner.get(f"/api/v1/models/{ai_model.pk}/hti1/csv/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 31
    developer = next(r for r in rows if r["key"] == "developer")
    assert developer["value"] == '\'=HYPERLINK("http://evil.example","click")' and developer["evidence"] == "'+1 555"


def test_reviewers_record_attributes_on_the_admin_page(client, team, model_version) -> None:
    team.owner.is_staff = team.owner.is_superuser = True
    team.owner.save()
    client.force_login(team.owner)
    listing = client.get("/admin/reports/sourceattribute/").content.decode()
    assert model_version.ai_model.name in listing and "of 31" in listing
    url = f"/admin/reports/sourceattribute/model/{model_version.ai_model.pk}/"
    page = client.get(url)
    assert page.status_code == 200 and "Update schedule" in page.content.decode()
    response = client.post(
        url, {"funding_source": "", "funding_source__value": "Hospital AI fund", "funding_source__evidence": ""}
    )
    assert response.status_code == 302
    row = next(
        r
        for r in client.get(f"/api/v1/models/{model_version.ai_model.pk}/hti1/").json()["attributes"]
        if r["key"] == "funding_source"
    )
    assert (row["value"], row["reviewed_by"]) == ("Hospital AI fund", "olivia")
