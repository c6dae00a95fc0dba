"""Hostile and broken input on the upload paths (datasets and production batches) and in the engines.

Property-based (hypothesis): whatever bytes arrive, the answer is a dataset or a 4xx that says what is wrong,
never a 500, and nothing already stored changes. Explicit cases cover what a generator rarely finds: a BOM,
a 50 MB line, path-like file names, Parquet with unexpected types, all-missing and constant columns.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.models import Dataset
from tests.conftest import CLINICAL_ROLES, OUTCOME_ROLES, client_for, clinical_frame, csv_upload, upload_frame

pytestmark = pytest.mark.django_db
FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _file(payload: bytes, name: str) -> io.BytesIO:
    buffer = io.BytesIO(payload)
    buffer.name = name
    return buffer


def _post_dataset(client: Any, file: io.BytesIO, roles: dict[str, Any] = CLINICAL_ROLES) -> Any:
    body = {"organization": "st-elsewhere", "name": "hostile", "file": file, "column_roles": json.dumps(roles)}
    return client.post("/api/v1/datasets/", body, format="multipart")


def _post_batch(client: Any, version_id: int, file: io.BytesIO) -> Any:
    body = {"kind": "outcomes", "file": file, "column_roles": json.dumps(OUTCOME_ROLES)}
    return client.post(f"/api/v1/versions/{version_id}/batches/", body, format="multipart")


def _stored(media_root: Path) -> dict[str, str]:
    """Every stored file with its sha256: what a refused upload must leave as it was."""
    return {
        str(p.relative_to(media_root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in media_root.rglob("*")
        if p.is_file()
    }


def _check(response: Any, media_root: Path, before: dict[str, str]) -> None:
    assert response.status_code in (201, 400, 413), (response.status_code, response.content[:300])
    if response.status_code == 201:
        return
    detail = response.json().get("detail") or response.json()
    assert detail and str(detail).strip(), response.content
    # A refusal stores nothing and changes nothing.
    assert _stored(media_root) == before


cells = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    st.sampled_from(["0", "1", "", "NaN", "inf", "-inf", "None", '"', '""', "=1+1", "\ufeff", "1e309", "0.5"]),
)
rows = st.lists(st.lists(cells, min_size=0, max_size=7), min_size=0, max_size=12)
header = st.lists(st.sampled_from(["sepsis", "alert", "score", "race", "sex", "age", "lactate", "ward", "x", ""]))


@st.composite
def csv_payloads(draw: Any) -> bytes:
    """CSV-like text: a header of real and odd names, ragged rows of odd cells, quoting left to chance."""
    lines = [draw(header), *draw(rows)]
    text = "\n".join(",".join(line) for line in lines)
    if draw(st.booleans()):
        text = "\ufeff" + text
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(payload=st.one_of(csv_payloads(), st.binary(max_size=400)), name=st.sampled_from(["d.csv", "d.parquet", "d"]))
def test_any_bytes_get_a_dataset_or_a_4xx_never_a_500_and_change_nothing(team, media_root, payload, name) -> None:
    client = client_for(team.owner, team.organization)
    before = _stored(media_root)
    count = Dataset.objects.count()
    response = _post_dataset(client, _file(payload, name))
    _check(response, media_root, before)
    assert Dataset.objects.count() == count + (response.status_code == 201)


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURES)
@given(payload=st.one_of(csv_payloads(), st.binary(max_size=300)))
def test_any_bytes_appended_to_a_stream_get_a_batch_or_a_4xx(team, model_version, media_root, payload) -> None:
    client = client_for(team.owner, team.organization)
    before = _stored(media_root)
    _check(_post_batch(client, model_version.pk, _file(payload, "outcomes.csv")), media_root, before)


arrow_columns = st.sampled_from(
    [
        pa.array([0, 1, 0, 1, 1, 0], pa.int64()),
        pa.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0]),
        pa.array([0.1, float("nan"), 0.3, float("inf"), 0.5, 0.6]),
        pa.array([None] * 6, pa.float64()),
        pa.array([None] * 6, pa.null()),
        pa.array(["a", "b", "a", "b", "a", "b"]),
        pa.array(["a"] * 6),
        pa.array([True, False, True, False, True, False]),
        pa.array([[1], [0], [1], [0], [1], []]),
        pa.array([{"x": 1}] * 6),
        pa.array([b"\x00", b"\x01"] * 3, pa.binary()),
        pa.array(pd.to_datetime(["2026-01-01"] * 6)),
        pa.array(["a", "b", "a", "b", "a", "b"]).dictionary_encode(),
        pa.array([1, 2, 3, 4, 5, 6], pa.decimal128(5, 0)),
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(columns=st.fixed_dictionaries({name: arrow_columns for name in ("sepsis", "alert", "score", "race", "sex")}))
def test_parquet_of_any_column_types_gets_a_dataset_or_a_4xx_naming_the_column(team, media_root, columns) -> None:
    client = client_for(team.owner, team.organization)
    roles = {**CLINICAL_ROLES, "features": []}
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    before = _stored(media_root)
    response = _post_dataset(client, _file(buffer.getvalue(), "typed.parquet"), roles)
    _check(response, media_root, before)
    if response.status_code == 400:
        assert response.json().get("column") in (None, *columns), response.json()


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(team, media_root) -> None:
    payload = "\ufeff".encode() + clinical_frame(200).to_csv(index=False).encode()
    response = _post_dataset(client_for(team.owner, team.organization), _file(payload, "bom.csv"))
    assert response.status_code == 201, response.content
    assert Dataset.objects.get().columns[0]["name"] == clinical_frame(1).columns[0]


def test_a_50_mb_line_is_refused_saying_what_is_wrong(team, media_root) -> None:
    client = client_for(team.owner, team.organization)
    frame_text = clinical_frame(50).to_csv(index=False)
    # One data line of 50 MB: many more fields than the header has.
    ragged = frame_text + ",".join(["1"] * 25_000_000) + "\n"
    before = _stored(media_root)
    response = _post_dataset(client, _file(ragged.encode(), "ragged.csv"))
    assert response.status_code == 400 and "could not be parsed" in response.json()["detail"]
    # A header of 50 MB with no line break at all.
    response = _post_dataset(client, _file(b"x" * 50_000_000, "one-line.csv"))
    assert response.status_code == 400 and "column name" in response.json()["detail"]
    assert _stored(media_root) == before


def test_a_path_in_the_file_name_is_reduced_to_its_last_part(team, media_root) -> None:
    client = client_for(team.owner, team.organization)
    for name in ("../../../../etc/passwd.csv", "..\\..\\windows\\system.csv", "/var/uploads/evil.csv"):
        response = _post_dataset(client, csv_upload(clinical_frame(60), name=name))
        assert response.status_code == 201, response.content
        dataset = Dataset.objects.get(pk=response.json()["id"])
        assert "/" not in dataset.original_filename and "\\" not in dataset.original_filename
        assert ".." not in dataset.original_filename
        stored = Path(dataset.file.path).resolve()
        assert stored.is_relative_to(Path(media_root).resolve())


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("sepsis", "label column 'sepsis' is missing a value at data row 1"),
        ("score", "score column 'score' has a missing or infinite value"),
        ("race", "protected attribute 'race'"),
    ],
)
def test_an_all_missing_role_column_is_refused_naming_it(team, media_root, column, message) -> None:
    frame = clinical_frame(100)
    frame[column] = np.nan
    response = _post_dataset(client_for(team.owner, team.organization), csv_upload(frame))
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"] and response.json()["column"] == column


def test_all_missing_constant_and_infinite_features_are_kept_and_reported_by_the_audit(
    team, model_version, media_root
) -> None:
    from audits.services import audit_run_create, audit_run_execute

    frame = clinical_frame(400, seed=31)
    frame["age"] = np.nan
    frame["ward"] = "ICU"
    frame["lactate"] = frame["lactate"].where(frame.index % 50 != 0, np.inf)
    dataset = upload_frame(team, frame, name="odd features")
    run = audit_run_create(model_version=model_version, dataset=dataset, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    quality = {c["column"]: c for c in run.result["quality"]["columns"]}
    assert quality["age"]["missing"] == 400 and quality["age"]["missing_share"] == 1.0
    assert quality["ward"]["constant"] is True and quality["ward"]["distinct"] == 1
    assert quality["lactate"]["non_finite"] == 8 and quality["lactate"]["missing"] == 0  # counted apart


def test_a_nul_character_in_the_url_is_refused_not_a_server_error(team) -> None:
    # Found by the OpenAPI fuzzing: PostgreSQL text cannot hold NUL, so a filter with one would fail there.
    client = client_for(team.owner, team.organization)
    for url in ("/api/v1/events/?action=%00", "/api/v1/models/?x=a%00b", "/admin/?q=%00"):
        response = client.get(url)
        assert response.status_code == 400 and "NUL" in response.json()["detail"], url
