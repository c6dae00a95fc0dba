"""The audit_file command: the same engines on files, JSON on standard output."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.aif360_reference import aif360_metric, aif360_value
from tests.data import clinical_frame


def test_it_prints_the_result_document_as_json(tmp_path) -> None:
    current, reference = clinical_frame(2500, seed=31), clinical_frame(2500, seed=32, shift=0.5)
    current.to_csv(tmp_path / "current.csv", index=False)
    reference.to_parquet(tmp_path / "reference.parquet", index=False)
    out = StringIO()
    call_command(
        "audit_file",
        str(tmp_path / "current.csv"),
        "--label",
        "sepsis",
        "--prediction",
        "alert",
        "--score",
        "score",
        "--protected",
        "race=White,sex",
        "--reference",
        str(tmp_path / "reference.parquet"),
        stdout=out,
    )
    result = json.loads(out.getvalue())
    assert result["rows"] == 2500
    assert {"rows", "fairness", "drift", "quality"} <= set(result)
    spd = next(
        d
        for d in result["fairness"]["disparities"]
        if d["group"] == "Black" and d["metric"] == "statistical_parity_difference"
    )
    metric = aif360_metric(
        current, label="sepsis", prediction="alert", attribute="race", group="Black", reference="White"
    )
    assert spd["value"] == pytest.approx(aif360_value(metric, "statistical_parity_difference"), abs=1e-9)
    drifted = {c["column"]: c["drifted"] for c in result["drift"]["columns"]}
    assert drifted["lactate"] is True
    assert set(drifted) == {"age", "lactate", "ward", "score", "alert", "sepsis"}


def test_it_prints_a_readable_table_as_text(tmp_path) -> None:
    clinical_frame(800).to_csv(tmp_path / "data.csv", index=False)
    out = StringIO()
    call_command(
        "audit_file",
        str(tmp_path / "data.csv"),
        "--label",
        "sepsis",
        "--prediction",
        "alert",
        "--protected",
        "race",
        "--format",
        "text",
        stdout=out,
    )
    text = out.getvalue()
    assert "Fairness by group" in text and "White *" in text and "disparate_impact" in text


def test_it_names_the_missing_column(tmp_path) -> None:
    clinical_frame(100).to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(CommandError, match="column 'outcome' named in column_roles is not in the file"):
        call_command(
            "audit_file",
            str(tmp_path / "data.csv"),
            "--label",
            "outcome",
            "--prediction",
            "alert",
            "--protected",
            "race",
        )


def test_it_names_a_missing_file(tmp_path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "audit_file", str(tmp_path / "nope.csv"), "--label", "y", "--prediction", "p", "--protected", "race"
        )


def test_it_takes_a_policy_file_and_a_minimum_group_size(tmp_path) -> None:
    clinical_frame(3000).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "policy.json").write_text('{"ci_rule": "point", "bounds": {"disparate_impact": {"low": 0.9}}}')
    out = StringIO()
    call_command(
        "audit_file",
        str(tmp_path / "data.csv"),
        "--label",
        "sepsis",
        "--prediction",
        "alert",
        "--protected",
        "race=White",
        "--policy",
        str(tmp_path / "policy.json"),
        "--min-group-size",
        "400",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    assert result["policy"]["ci_rule"] == "point" and result["policy"]["min_group_size"] == 400
    assert result["policy"]["bounds"]["disparate_impact"] == {"low": 0.9, "high": 1.25, "severity": "critical"}
    status = {d["group"]: d["status"] for d in result["fairness"]["disparities"] if d["metric"] == "disparate_impact"}
    # Black (n=605) breaches 0.9 on the point estimate; Asian and Hispanic (n~300) are under 400: not judged.
    assert status == {"Black": "fail", "Asian": "insufficient_data", "Hispanic": "insufficient_data"}
    assert result["verdict"] == "fail"


def test_a_risk_score_alone_is_audited_at_the_operating_point(tmp_path) -> None:
    clinical_frame(1000).drop(columns=["alert"]).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "policy.json").write_text('{"operating_point": 0.35}')
    out = StringIO()
    call_command(
        "audit_file",
        str(tmp_path / "data.csv"),
        "--label",
        "sepsis",
        "--score",
        "score",
        "--protected",
        "race",
        "--policy",
        str(tmp_path / "policy.json"),
        stdout=out,
    )
    result = json.loads(out.getvalue())
    frame = clinical_frame(1000)
    white = next(g for g in result["fairness"]["groups"] if g["group"] == "White")
    assert white["selection_rate"] == pytest.approx((frame[frame.race == "White"].score >= 0.35).mean())


def test_a_malformed_policy_file_is_refused_with_the_reason(tmp_path) -> None:
    clinical_frame(100).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "policy.json").write_text('{"ci_rul": "point"}')
    with pytest.raises(CommandError, match="unknown policy keys: ci_rul"):
        call_command(
            "audit_file",
            str(tmp_path / "data.csv"),
            "--label",
            "sepsis",
            "--prediction",
            "alert",
            "--protected",
            "race",
            "--policy",
            str(tmp_path / "policy.json"),
        )
