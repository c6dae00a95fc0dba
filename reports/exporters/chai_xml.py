"""The CHAI Applied Model Card v0.2 as XML, validated against the CHAI XSD offline.

The XSD imports the W3C xmldsig schema by URL for an optional Signature element. Validation here is
offline: the import and the optional Signature element are dropped from the schema before it is
compiled (the card carries no signature), as the checklist in specs/REGULATORY.md suggests.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

NAMESPACE = "https://mc.chai.org/v0.2/schema.xsd"
SCHEMA = Path(__file__).parent / "schemas" / "chai-applied-model-card-v0.2.xsd"
NOT_RECORDED = "Not recorded in the governance service"
# Marks an element that holds other elements rather than text.
CONTAINER = object()


class ModelCardInvalid(Exception):
    """The card does not validate against the CHAI schema: a defect of this exporter, not of the user's input."""


def offline_schema_text(xsd: str) -> str:
    """The schema without its network import of xmldsig and without the optional Signature element."""
    xsd = re.sub(r"<xs:import[^>]*xmldsig[^>]*/>", "", xsd)
    return re.sub(r'<xs:element ref="ds:Signature"[^>]*/>', "", xsd)


@cache
def _schema(path: str = str(SCHEMA)) -> Any:
    from lxml import etree

    return etree.XMLSchema(etree.fromstring(offline_schema_text(Path(path).read_text()).encode()))


def validation_errors(xml: bytes, *, schema_path: Path = SCHEMA) -> list[str]:
    """The schema's complaints about a card, empty when it validates."""
    from lxml import etree

    schema = _schema(str(schema_path))
    document = etree.fromstring(xml)
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def _text(value: Any) -> str:
    return str(value).strip() if value not in (None, "") else NOT_RECORDED


def model_card_xml(card: dict[str, Any]) -> bytes:
    """Build the card from a document of the service (reports.services.model_card) and check it validates.

    Every element the schema requires is present; what the service does not hold says so in words.
    """
    from lxml import etree

    def element(parent: Any, name: str, text: Any = CONTAINER) -> Any:
        node = etree.SubElement(parent, f"{{{NAMESPACE}}}{name}")
        if text is not CONTAINER:
            node.text = _text(text)
        return node

    def section(parent: Any, name: str, fields: list[tuple[str, Any]]) -> Any:
        node = element(parent, name)
        for field, value in fields:
            element(node, field, value)
        return node

    root = etree.Element(f"{{{NAMESPACE}}}AppliedModelCard", nsmap={"mc": NAMESPACE})
    section(root, "BasicInfo", list(card["basic_info"].items()))
    release = card["release_info"]
    section(
        root,
        "ReleaseInfo",
        [(k, release[k]) for k in ("ReleaseStage", "ReleaseDate", "ReleaseVersion", "GlobalAvailability")],
    )
    summary = element(root, "ModelSummary")
    element(summary, "Summary", card["summary"])
    keywords = element(summary, "Keywords")
    for keyword in card["keywords"]:
        element(keywords, "Keyword", keyword)
    section(root, "UsesAndDirections", list(card["uses_and_directions"].items()))
    section(root, "Warnings", list(card["warnings"].items()))
    trust = element(root, "TrustIngredients")
    section(trust, "AISystemFacts", list(card["ai_system_facts"].items()))
    section(trust, "TransparencyInformation", list(card["transparency"].items()))
    metrics = element(root, "KeyMetrics")
    for name in ("UsefulnessUsabilityEfficacy", "FairnessEquity", "SafetyReliability"):
        metric = card["key_metrics"][name]
        node = element(metrics, name)
        element(node, "MetricGoal", metric["goal"])
        results = element(node, "Results")
        for label, value in metric["results"] or [("No result", {"note": "the audit produced none"})]:
            result = element(results, "MetricResult")
            element(result, "Label", label)
            element(result, "ValueJson", json.dumps(value, sort_keys=True, separators=(",", ":")))
        for field in ("Interpretation", "TestType", "TestingDataDescription", "ValidationProcessAndJustification"):
            element(node, field, metric[field])
    resources = card["resources"]
    section(
        root,
        "Resources",
        [("EvaluationReferences", resources["EvaluationReferences"])]
        + [(k, resources[k]) for k in ("PeerReviewedPublications", "PatientConsentOrDisclosure")],
    )
    element(root, "Bibliography", card["bibliography"])
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    errors = validation_errors(xml)
    if errors:
        raise ModelCardInvalid("; ".join(errors[:5]))
    return xml
