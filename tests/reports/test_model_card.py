"""The CHAI Applied Model Card: valid against the CHAI XSD, key metrics from the audit, small cells never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from reports.exporters.chai_xml import NAMESPACE, NOT_RECORDED, SCHEMA, offline_schema_text, validation_errors
from tests.conftest import client_for
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db

SHARED_XSD = Path(__file__).resolve().parents[3] / "shared" / "specs" / "chai-applied-model-card-v0.2.xsd"
NS = {"mc": NAMESPACE}


def _shared_schema() -> etree.XMLSchema:
    if not SHARED_XSD.exists():
        pytest.skip(f"the CHAI XSD of ../shared is not at {SHARED_XSD}")
    return etree.XMLSchema(etree.fromstring(offline_schema_text(SHARED_XSD.read_text()).encode()))


def test_the_shipped_schema_is_the_chai_schema() -> None:
    if not SHARED_XSD.exists():
        pytest.skip(f"the CHAI XSD of ../shared is not at {SHARED_XSD}")
    assert SCHEMA.read_bytes() == SHARED_XSD.read_bytes()
    offline = offline_schema_text(SCHEMA.read_text())
    assert "xs:import" not in offline and "ds:Signature" not in offline


def test_the_model_card_validates_and_its_key_metrics_are_the_audits(team, finished_run) -> None:
    version = finished_run.model_version
    response = client_for(team.viewer, team.organization, scope="read").get(
        f"/api/v1/versions/{version.pk}/model-card.xml"
    )
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("application/xml")
    document = etree.fromstring(response.content)
    schema = _shared_schema()
    assert schema.validate(document), schema.error_log

    assert document.findtext("mc:BasicInfo/mc:ModelName", namespaces=NS) == version.ai_model.name
    assert document.findtext("mc:ReleaseInfo/mc:ReleaseVersion", namespaces=NS) == version.version
    assert document.findtext("mc:ReleaseInfo/mc:GlobalAvailability", namespaces=NS) == NOT_RECORDED
    results = {
        r.findtext("mc:Label", namespaces=NS): json.loads(r.findtext("mc:ValueJson", namespaces=NS))
        for r in document.iterfind("mc:KeyMetrics/mc:FairnessEquity/mc:Results/mc:MetricResult", NS)
    }
    black = next(
        d
        for d in finished_run.result["fairness"]["disparities"]
        if (d["metric"], d["attribute"], d["group"]) == ("disparate_impact", "race", "Black")
    )
    card = results["disparate impact, race = Black against White"]
    assert card["value"] == pytest.approx(black["value"], abs=1e-12) and card["ci95"] == pytest.approx(black["ci"])
    assert card["status"] == black["status"]
    usefulness = {
        r.findtext("mc:Label", namespaces=NS)
        for r in document.iterfind("mc:KeyMetrics/mc:UsefulnessUsabilityEfficacy/mc:Results/mc:MetricResult", NS)
    }
    assert "AUROC, race = White" in usefulness and "sensitivity, sex = female" in usefulness
    # Eight patients of a small group: suppressed, with the next smallest group hidden alongside.
    assert b"Pacific Islander" not in response.content
    hidden = [g for g in finished_run.result["fairness"]["groups"] if g["attribute"] == "race"]
    complementary = sorted(
        (g for g in hidden if g["group"] != "Pacific Islander" and not g["is_reference"]), key=lambda g: g["n"]
    )[0]
    assert f"race = {complementary['group']}".encode() not in response.content


def test_the_validation_is_not_vacuous(team, finished_run) -> None:
    xml = (
        client_for(team.owner, team.organization)
        .get(f"/api/v1/versions/{finished_run.model_version.pk}/model-card.xml")
        .content
    )
    assert validation_errors(xml) == []
    broken = etree.fromstring(xml)
    broken.remove(broken.find("mc:Warnings", NS))
    assert any("Warnings" in e for e in validation_errors(etree.tostring(broken)))


def test_a_card_needs_a_succeeded_audit_and_is_scoped_to_the_organization(team, finished_run) -> None:
    owner = client_for(team.owner, team.organization)
    fresh = ModelVersionFactory(ai_model=finished_run.model_version.ai_model)
    none_yet = owner.get(f"/api/v1/versions/{fresh.pk}/model-card.xml")
    assert none_yet.status_code == 409 and "no succeeded audit" in none_yet.json()["detail"]
    url = f"/api/v1/versions/{finished_run.model_version.pk}/model-card.xml"
    assert owner.get(url, {"run": "latest"}).status_code == 400
    assert owner.get(url, {"run": finished_run.pk}).status_code == 200
    assert client_for(team.outsider, team.outsider_organization).get(url).status_code == 404
