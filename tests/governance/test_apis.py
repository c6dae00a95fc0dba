"""The registry API: authorization for every caller, validation that names the problem, frozen data."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from governance.models import ApiToken, Dataset, GovernanceEvent, ModelVersion
from tests.conftest import CLINICAL_ROLES, client_for, clinical_frame, csv_upload

pytestmark = pytest.mark.django_db


def _upload(client: APIClient, frame: pd.DataFrame | io.BytesIO, roles=CLINICAL_ROLES, **extra):
    file = frame if isinstance(frame, io.BytesIO) else csv_upload(frame)
    data = {
        "organization": "st-elsewhere",
        "name": "ED cohort 2026-Q3",
        "file": file,
        "column_roles": json.dumps(roles),
        **extra,
    }
    return client.post("/api/v1/datasets/", data, format="multipart")


class TestAuthentication:
    def test_it_refuses_a_request_without_a_token(self, team) -> None:
        response = APIClient().get("/api/v1/models/")
        assert response.status_code == 401

    def test_it_refuses_an_unknown_token(self, team) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer gov_not-a-real-token")
        assert client.get("/api/v1/models/").status_code == 401

    def test_it_refuses_an_expired_token(self, team) -> None:
        client = client_for(team.owner, team.organization)
        ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        response = client.get("/api/v1/models/")
        assert response.status_code == 401
        assert "expired" in response.json()["detail"]

    def test_it_stores_only_an_hmac_of_the_token(self, team) -> None:
        from governance.services import api_token_create

        token, plaintext = api_token_create(
            organization=team.organization, user=team.owner, name="ci", scope="ci", actor=team.owner
        )
        assert plaintext.startswith("gov_") and len(plaintext) > 40
        assert plaintext not in (token.digest, token.prefix)
        assert plaintext.startswith(token.prefix)
        assert GovernanceEvent.objects.filter(action="api_token.created", object_id=str(token.pk)).exists()

    def test_a_read_token_cannot_write(self, team) -> None:
        client = client_for(team.owner, team.organization, scope="read")
        response = client.post(
            "/api/v1/models/",
            {"organization": "st-elsewhere", "name": "x", "slug": "x", "intended_use": "y"},
            format="json",
        )
        assert response.status_code == 403
        assert "read scope" in response.json()["detail"]


class TestModels:
    def test_an_owner_registers_a_model_and_a_version(self, team, owner_client) -> None:
        response = owner_client.post(
            "/api/v1/models/",
            {
                "organization": "st-elsewhere",
                "name": "Sepsis alert",
                "slug": "sepsis-alert",
                "intended_use": "Early warning of sepsis",
                "decision_role": "augments",
                "clinical_risk_level": "high",
            },
            format="json",
        )
        assert response.status_code == 201, response.json()
        body = response.json()
        assert (body["organization"], body["decision_role"], body["owner"]) == ("st-elsewhere", "augments", "olivia")
        version = owner_client.post(
            f"/api/v1/models/{body['id']}/versions/",
            {
                "version": "2.1.0",
                "artifact_uri": "s3://models/sepsis/2.1.0",
                "artifact_sha256": "a" * 64,
            },
            format="json",
        )
        assert version.status_code == 201, version.json()
        assert version.json()["stage"] == "draft"
        # CI retries: the same version string returns the registered version; another artifact is refused.
        again = owner_client.post(f"/api/v1/models/{body['id']}/versions/", {"version": "2.1.0"}, format="json")
        assert (again.status_code, again.json()["id"]) == (200, version.json()["id"])
        clash = owner_client.post(
            f"/api/v1/models/{body['id']}/versions/", {"version": "2.1.0", "artifact_sha256": "b" * 64}, format="json"
        )
        assert clash.status_code == 409
        assert "already registered with another artifact_sha256" in clash.json()["detail"]

    def test_a_viewer_cannot_register_a_model(self, team) -> None:
        client = client_for(team.viewer, team.organization)
        response = client.post(
            "/api/v1/models/",
            {"organization": "st-elsewhere", "name": "x", "slug": "x", "intended_use": "y"},
            format="json",
        )
        assert response.status_code == 403

    def test_an_outsider_sees_404_and_nothing_of_the_model(self, team, model_version) -> None:
        client = client_for(team.outsider, team.outsider_organization)
        model_id = model_version.ai_model_id
        assert client.get(f"/api/v1/models/{model_id}/").status_code == 404
        assert client.get(f"/api/v1/versions/{model_version.pk}/").status_code == 404
        assert client.get("/api/v1/models/").json()["results"] == []
        response = client.post(
            "/api/v1/models/",
            {"organization": "st-elsewhere", "name": "x", "slug": "x", "intended_use": "y"},
            format="json",
        )
        assert response.status_code == 404


class TestLifecycle:
    def test_a_version_moves_along_its_lifecycle_and_each_step_is_recorded(self, team, model_version) -> None:
        owner = client_for(team.owner, team.organization)
        approver = client_for(team.approver, team.organization)
        url = f"/api/v1/versions/{model_version.pk}/transition/"
        assert owner.post(url, {"stage": "validation"}, format="json").status_code == 200
        refused = owner.post(url, {"stage": "approved"}, format="json")
        assert refused.status_code == 403
        assert "approver" in refused.json()["detail"]
        approved = approver.post(url, {"stage": "approved"}, format="json")
        assert approved.status_code == 200
        assert (approved.json()["stage"], approved.json()["stage_changed_by"]) == ("approved", "ada")
        events = GovernanceEvent.objects.filter(action="model_version.stage_changed", object_id=str(model_version.pk))
        assert [(e.before["stage"], e.after["stage"]) for e in events.order_by("id")] == [
            ("draft", "validation"),
            ("validation", "approved"),
        ]

    def test_it_refuses_a_transition_the_lifecycle_does_not_allow(self, team, model_version) -> None:
        approver = client_for(team.approver, team.organization)
        response = approver.post(
            f"/api/v1/versions/{model_version.pk}/transition/", {"stage": "deployed"}, format="json"
        )
        assert response.status_code == 409
        assert "draft cannot move to deployed" in response.json()["detail"]
        model_version.refresh_from_db()
        assert model_version.stage == ModelVersion.Stage.DRAFT


class TestDatasetUpload:
    def test_it_stores_a_csv_as_frozen_parquet_with_its_hash(self, team, owner_client, media_root) -> None:
        frame = clinical_frame(500)
        response = _upload(owner_client, frame)
        assert response.status_code == 201, response.json()
        body = response.json()
        assert (body["row_count"], body["original_format"]) == (500, "csv")
        dataset = Dataset.objects.get(pk=body["id"])
        with dataset.file.open("rb") as stored:
            payload = stored.read()
        import hashlib

        assert hashlib.sha256(payload).hexdigest() == dataset.sha256
        table = pq.read_table(io.BytesIO(payload))
        assert table.column_names == list(frame.columns)
        pd.testing.assert_frame_equal(table.to_pandas(), frame, check_dtype=False)
        assert dataset.column_roles["protected"][0] == {"column": "race", "reference": "White"}
        with pytest.raises(ValueError, match="frozen"):
            dataset.save()

    def test_a_none_category_is_kept_and_only_the_documented_markers_read_as_missing(
        self, team, owner_client, media_root
    ) -> None:
        frame = clinical_frame(200)
        frame["a1c_result"] = ["None", ">7", "Norm", "NA", ""] * 40
        response = _upload(owner_client, frame)
        assert response.status_code == 201, response.json()
        with Dataset.objects.get(pk=response.json()["id"]).file.open("rb") as stored:
            a1c = pq.read_table(stored).column("a1c_result").to_pylist()
        assert a1c[:5] == ["None", ">7", "Norm", None, None]

    def test_it_refuses_a_categorical_column_that_is_not_a_feature(self, team, owner_client, media_root) -> None:
        response = _upload(owner_client, clinical_frame(100), roles={**CLINICAL_ROLES, "categorical": ["race"]})
        assert response.status_code == 400
        assert "column_roles.categorical names 'race', which is not among the features" in response.json()["detail"]

    def test_it_accepts_parquet(self, team, owner_client, media_root) -> None:
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(clinical_frame(300), preserve_index=False), buffer)
        buffer.seek(0)
        buffer.name = "cohort.parquet"
        response = _upload(owner_client, buffer)
        assert response.status_code == 201, response.json()
        assert response.json()["original_format"] == "parquet"

    @pytest.mark.parametrize(
        ("mutate", "roles_patch", "message", "column"),
        [
            (
                lambda f: f.drop(columns=["sepsis"]),
                {},
                "column 'sepsis' named in column_roles is not in the file",
                "sepsis",
            ),
            (lambda f: f.assign(alert=f["alert"] * 2), {}, "prediction column 'alert' must hold only 0 and 1", "alert"),
            (lambda f: f.assign(sepsis=0), {}, "label column 'sepsis' has only one class (0)", "sepsis"),
            (
                lambda f: f.assign(score=f["score"].where(f.index != 7)),
                {},
                "score column 'score' has a missing or infinite value at data row 8",
                "score",
            ),
            (
                lambda f: f,
                {"protected": [{"column": "race", "reference": "Martian"}]},
                "reference group 'Martian' of protected attribute 'race' does not occur",
                "race",
            ),
            (lambda f: f.assign(sex="female"), {}, "protected attribute 'sex' has a single group", "sex"),
            (
                lambda f: f.assign(sepsis=f["sepsis"].astype(str).replace("1", "yes")),
                {},
                "label column 'sepsis' must hold 0 and 1",
                "sepsis",
            ),
        ],
    )
    def test_it_refuses_a_bad_file_naming_the_column(
        self, team, owner_client, media_root, mutate, roles_patch, message, column
    ) -> None:
        response = _upload(owner_client, mutate(clinical_frame(200)), roles={**CLINICAL_ROLES, **roles_patch})
        assert response.status_code == 400
        assert message in response.json()["detail"]
        assert response.json()["column"] == column
        assert Dataset.objects.count() == 0

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            (b"\xff\xfe\x00r\x00a\x00c\x00e", "not UTF-8"),
            (b"", "empty"),
            (b"race,race,sepsis\nA,B,1\n", "appears twice"),
            (b"race,sex,sepsis,alert,score\n", "no rows"),
            (b'race,sex\n"White,female\n', "could not be parsed"),
            (b"PAR1garbage", "not a readable Parquet file"),
        ],
    )
    def test_it_refuses_an_unreadable_file_with_a_reason(self, team, owner_client, media_root, payload, message):
        buffer = io.BytesIO(payload)
        buffer.name = "broken.csv"
        response = _upload(owner_client, buffer)
        assert response.status_code == 400, response.content
        assert message in json.dumps(response.json())

    def test_it_refuses_a_file_over_the_size_limit(self, team, owner_client, media_root, settings) -> None:
        settings.DATASET_MAX_UPLOAD_BYTES = 1000
        response = _upload(owner_client, clinical_frame(200))
        assert response.status_code == 413
        assert "the limit is 1000 bytes" in response.json()["detail"]

    def test_it_refuses_malformed_column_roles(self, team, owner_client, media_root) -> None:
        response = owner_client.post(
            "/api/v1/datasets/",
            {
                "organization": "st-elsewhere",
                "name": "x",
                "file": csv_upload(clinical_frame(50)),
                "column_roles": "{not json",
            },
            format="multipart",
        )
        assert response.status_code == 400
        assert "not valid JSON" in str(response.json()["column_roles"])

    def test_a_viewer_cannot_upload(self, team, media_root) -> None:
        response = _upload(client_for(team.viewer, team.organization), clinical_frame(100))
        assert response.status_code == 403
        assert Dataset.objects.count() == 0


def test_the_openapi_schema_describes_the_api(team, owner_client) -> None:
    response = owner_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert {"/api/v1/datasets/", "/api/v1/audits/", "/api/v1/versions/{version_id}/transition/"} <= set(paths)
