"""The production stream: batches through the API, outcomes joined later by record id, windows frozen as datasets."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audits.engines.errors import TableError
from audits.engines.stream import Batch, check_batch, stream_roles, window_table
from audits.models import PredictionBatch
from governance.models import Dataset, GovernanceEvent
from tests.conftest import client_for, csv_upload
from tests.data import OUTCOME_ROLES, STREAM_ROLES, production_frames

PREDICTION_ROLES = {"record_id": "enc", "timestamp": "at", "score": "p", "protected": [{"column": "race"}]}


def _batch(batch_id: int, table: pa.Table, roles: dict, kind: str = "predictions") -> Batch:
    checked = stream_roles(roles, kind=kind)
    check_batch(table, checked, kind=kind)
    return Batch(batch_id=batch_id, roles=checked, table=table, received_at=datetime(2026, 11, 20, tzinfo=UTC))


def test_a_window_keeps_the_latest_score_of_each_record_and_joins_the_outcomes_that_came_later() -> None:
    first = pa.table(
        {
            "enc": [1, 2, 3, 4],
            "at": ["2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z", "2026-11-09T10:00:00Z", "2026-11-03T00:00:00Z"],
            "p": [0.9, 0.2, 0.7, 0.4],
            "race": ["A", "B", "A", "B"],
        }
    )
    # Record 2 scored again later, with its id written as text in this batch.
    rescored = pa.table({"enc": ["2"], "at": ["2026-11-04T00:00:00Z"], "p": [0.8], "race": ["B"]})
    outcomes = pa.table({"enc": [1, 2], "y": [1, 0]})
    corrected = pa.table({"enc": [2], "y": [1]})
    window = window_table(
        [_batch(1, first, PREDICTION_ROLES), _batch(2, rescored, PREDICTION_ROLES)],
        [
            _batch(3, outcomes, {"record_id": "enc", "label": "y"}, "outcomes"),
            _batch(4, corrected, {"record_id": "enc", "label": "y"}, "outcomes"),
        ],
        start=datetime(2026, 11, 1, tzinfo=UTC),
        end=datetime(2026, 11, 8, tzinfo=UTC),
    )
    frame = window.table.to_pandas()
    # Record 3 is outside the window, record 4 still awaits its outcome, record 2 keeps its later score
    # and its corrected outcome.
    assert frame.to_dict("list") == {"p": [0.9, 0.8], "race": ["A", "B"], "y": [1, 1]}
    assert window.statistics == {
        "predictions_in_window": 4,
        "rescored_records_dropped": 1,
        "awaiting_outcome": 1,
        "rows": 2,
    }
    assert window.column_roles["label"] == "y" and "record_id" not in window.column_roles


@pytest.mark.parametrize(
    ("table", "roles", "message"),
    [
        (pa.table({"enc": [1, 1], "p": [0.1, 0.2], "race": ["A", "B"]}), {}, "repeats an earlier record at data row 2"),
        (pa.table({"enc": [1.5, 2.0], "p": [0.1, 0.2], "race": ["A", "B"]}), {}, "must hold integers or text"),
        (
            pa.table({"enc": [1, 2], "at": ["2026-11-01", "yesterday"], "p": [0.1, 0.2], "race": ["A", "B"]}),
            {"timestamp": "at"},
            "unreadable time at data row 2",
        ),
        (
            pa.table({"enc": [1, 2], "p": [0.1, None], "race": ["A", "B"]}),
            {},
            "missing or infinite value at data row 2",
        ),
        (pa.table({"enc": [1, 2], "race": ["A", "B"]}), {}, "column 'p' named in column_roles is not in the file"),
    ],
)
def test_a_bad_predictions_batch_is_refused_with_the_row_or_column_at_fault(table, roles, message) -> None:
    checked = stream_roles({"record_id": "enc", "score": "p", "protected": ["race"], **roles}, kind="predictions")
    with pytest.raises(TableError, match=message):
        check_batch(table, checked, kind="predictions")


def test_outcomes_need_a_record_id_and_a_binary_label() -> None:
    with pytest.raises(TableError, match="record_id is required"):
        stream_roles({"label": "y"}, kind="outcomes")
    checked = stream_roles({"record_id": "enc", "label": "y"}, kind="outcomes")
    with pytest.raises(TableError, match="must hold only 0 and 1"):
        check_batch(pa.table({"enc": [1, 2], "y": [1, 2]}), checked, kind="outcomes")


@pytest.mark.django_db
def test_batches_uploaded_through_the_api_are_frozen_and_a_window_joins_them_as_the_hand_join_does(
    team, model_version, media_root
) -> None:
    client = client_for(team.owner, team.organization)
    predictions, outcomes = production_frames(3000, seed=31, start="2026-11-01", days=14)
    url = f"/api/v1/versions/{model_version.pk}/batches/"
    responses = [
        client.post(
            url,
            {"kind": kind, "file": csv_upload(frame), "column_roles": json.dumps(roles)},
            format="multipart",
        )
        for kind, frame, roles in (
            ("predictions", predictions.iloc[:2000], STREAM_ROLES),
            ("predictions", predictions.iloc[2000:], STREAM_ROLES),
            ("outcomes", outcomes, OUTCOME_ROLES),
        )
    ]
    assert [r.status_code for r in responses] == [201, 201, 201], responses[0].json()
    first = responses[0].json()
    assert first["row_count"] == 2000
    assert first["first_event_at"].startswith("2026-11-01")
    batch = PredictionBatch.objects.get(pk=first["id"])
    with pytest.raises(ValueError, match="frozen"):
        batch.save()
    assert GovernanceEvent.objects.filter(action="prediction_batch.uploaded").count() == 3

    window = client.post(
        f"/api/v1/versions/{model_version.pk}/windows/",
        {"start": "2026-11-05T00:00:00Z", "end": "2026-11-12T00:00:00Z"},
        format="json",
    )
    assert window.status_code == 201, window.json()
    body = window.json()
    stamps = pd.to_datetime(predictions["scored_at"], utc=True)
    in_window = predictions[(stamps >= "2026-11-05") & (stamps < "2026-11-12")]
    expected = in_window.merge(outcomes, on="encounter_id", how="inner")
    assert body["kind"] == "production"
    assert body["row_count"] == len(expected)
    dataset = Dataset.objects.get(pk=body["id"])
    assert dataset.provenance["awaiting_outcome"] == len(in_window) - len(expected)
    assert [b["kind"] for b in dataset.provenance["batches"]] == ["predictions", "predictions", "outcomes"]
    assert dataset.column_roles["label"] == "sepsis"
    with dataset.file.open("rb") as stored:
        frozen = pq.read_table(stored).to_pandas()
    columns = ["race", "sex", "age", "lactate", "ward", "alert", "score", "sepsis"]
    pd.testing.assert_frame_equal(
        frozen[columns].reset_index(drop=True),
        expected[columns].reset_index(drop=True),
        check_dtype=False,
    )


@pytest.mark.django_db
def test_stream_uploads_are_refused_with_4xx_that_name_the_problem(team, model_version, media_root) -> None:
    client = client_for(team.owner, team.organization)
    predictions, _ = production_frames(50, seed=3, start="2026-11-01", days=2)
    url = f"/api/v1/versions/{model_version.pk}/batches/"

    def post(frame: pd.DataFrame, roles: dict, kind: str = "predictions"):
        return client.post(
            url, {"kind": kind, "file": csv_upload(frame), "column_roles": json.dumps(roles)}, format="multipart"
        )

    no_id = post(predictions, {k: v for k, v in STREAM_ROLES.items() if k != "record_id"})
    assert no_id.status_code == 400 and "record_id is required" in no_id.json()["detail"]
    twice = post(pd.concat([predictions, predictions.iloc[:1]]), STREAM_ROLES)
    assert twice.status_code == 400 and "data row 51" in twice.json()["detail"]
    assert twice.json()["column"] == "encounter_id"
    empty_window = client.post(
        f"/api/v1/versions/{model_version.pk}/windows/",
        {"start": "2026-10-01T00:00:00Z", "end": "2026-10-08T00:00:00Z"},
        format="json",
    )
    assert empty_window.status_code == 400 and "no predictions between" in empty_window.json()["detail"]
    viewer = client_for(team.viewer, team.organization)
    refused = viewer.post(
        url,
        {"kind": "predictions", "file": csv_upload(predictions), "column_roles": json.dumps(STREAM_ROLES)},
        format="multipart",
    )
    assert refused.status_code == 403
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.get(url).status_code == 404
    assert PredictionBatch.objects.count() == 0


@pytest.mark.django_db
def test_a_window_without_any_outcome_says_outcomes_are_awaited(team, model_version, media_root) -> None:
    from audits.services.stream import prediction_batch_upload, production_window_snapshot

    predictions, _ = production_frames(200, seed=4, start="2026-11-01", days=3)
    buffer = io.BytesIO(predictions.to_csv(index=False).encode())
    prediction_batch_upload(
        model_version=model_version,
        kind="predictions",
        file=buffer,
        filename="p.csv",
        column_roles=STREAM_ROLES,
        actor=team.owner,
    )
    with pytest.raises(TableError, match="no outcomes yet"):
        production_window_snapshot(
            model_version=model_version,
            start=datetime(2026, 11, 1, tzinfo=UTC),
            end=datetime(2026, 11, 5, tzinfo=UTC),
            actor=team.owner,
        )


def test_a_measure_of_need_that_arrives_with_the_outcomes_joins_the_window_as_the_alternative_outcome() -> None:
    predictions = pa.table({"enc": [10, 11, 12], "p": [0.9, 0.2, 0.4], "race": ["A", "B", "B"]})
    outcomes = pa.table({"enc": [12, 10], "y": [0, 1], "chronic": [3, 5]})
    window = window_table(
        [_batch(1, predictions, {k: v for k, v in PREDICTION_ROLES.items() if k != "timestamp"})],
        [_batch(2, outcomes, {"record_id": "enc", "label": "y", "alternative_outcome": "chronic"}, "outcomes")],
        start=datetime(2026, 11, 19, tzinfo=UTC),
        end=datetime(2026, 11, 21, tzinfo=UTC),  # the batch arrived on 2026-11-20 and has no timestamps
    )
    assert window.table.to_pydict() == {"p": [0.9, 0.4], "race": ["A", "B"], "y": [1, 0], "chronic": [5.0, 3.0]}
    assert window.column_roles["alternative_outcome"] == "chronic"
    assert window.statistics["awaiting_outcome"] == 1


def test_a_predictions_batch_may_carry_an_outcome_column_that_is_empty_so_far_but_not_a_wrong_one() -> None:
    roles = stream_roles({**PREDICTION_ROLES, "label": "y"}, kind="predictions")
    base = {"enc": [1, 2], "at": ["2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z"], "p": [0.1, 0.2], "race": ["A", "B"]}
    check_batch(pa.table({**base, "y": pa.array([None, None], pa.null())}), roles, kind="predictions")
    check_batch(pa.table({**base, "y": [1, None]}), roles, kind="predictions")
    with pytest.raises(TableError, match=r"label \(where known\) column 'y' must hold only 0 and 1"):
        check_batch(pa.table({**base, "y": [1, 7]}), roles, kind="predictions")
