"""The demo, as `make run` starts it: on the embedded default, and on PostgreSQL with a Redis worker."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from audits.models import AuditRun
from governance.demo import CATEGORICAL_FEATURES, NUMERIC_FEATURES, demo_admin, demo_frames, load_demo
from tests.aif360_reference import assert_disparities_match_aif360
from tests.conftest import wait_for_run

ROOT = Path(__file__).resolve().parent.parent


def test_rundemo_runs_the_audit_on_the_embedded_default_with_a_real_worker(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE", "CELERY", "DJANGO"))}
    env.update({"DEBUG": "1", "VAR_DIR": str(tmp_path / "var")})
    result = subprocess.run(
        [sys.executable, "manage.py", "rundemo", "--no-serve", "--timeout", "600"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "The demo is ready (sqlite3 database, broker filesystem)" in out
    assert "Login:        admin / " in out and "API token:    gov_" in out
    assert "committee-chair / " in out and "(Approver)" in out and "ward-nurse / " in out and "(Viewer)" in out
    assert "Demo report:  http://127.0.0.1:8000/reports/1/" in out
    with sqlite3.connect(tmp_path / "var" / "governance.sqlite3") as db:
        status, attempt, worker = db.execute(
            "select status, attempt, worker from audits_auditrun where schedule_id is null"
        ).fetchone()
        reports = db.execute("select count(*) from reports_report").fetchone()[0]
    assert (status, attempt, reports) == ("succeeded", 1, 1)
    assert "demo-worker@" in worker  # claimed by the worker process rundemo started, not run inline


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_demo_audit_on_real_data_matches_aif360(live_worker, media_root) -> None:
    user, _ = demo_admin()
    demo = load_demo(actor=user)
    run = wait_for_run(demo.run)
    assert run.status == AuditRun.Status.SUCCEEDED, run.error
    _, current, _ = demo_frames()
    result = run.result
    assert result["rows"] == len(current) == 12_000
    races = {g["group"] for g in result["fairness"]["groups"] if g["attribute"] == "race"}
    assert races == {"Caucasian", "AfricanAmerican", "Hispanic", "Other", "Asian", "(missing)"}
    assert_disparities_match_aif360(
        current, result["fairness"]["disparities"], label="readmitted_30d", prediction="high_risk"
    )
    assert {c["column"] for c in result["drift"]["columns"]} == {
        *NUMERIC_FEATURES,
        *CATEGORICAL_FEATURES,
        "risk_score",
        "high_risk",
        "readmitted_30d",
    }
    assert result["drift"]["dataset_drift"] == (result["drift"]["share_drifted"] >= 0.5)
