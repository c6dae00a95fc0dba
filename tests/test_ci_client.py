"""governance-ci against a live server and a real worker: exit 1 on a failing verdict, 0 on a passing one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audits.models import AuditRun
from audits.services import audit_policy_update
from governance import services
from tests.conftest import CLINICAL_ROLES, clinical_frame, upload_frame
from tests.factories import AIModelFactory

ROOT = Path(__file__).resolve().parent.parent


def _gate(live_server, token: str, model_id: int, version: str, data: Path, roles: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GOVERNANCE_TOKEN": token}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "governance.cli",
            "gate",
            "--url",
            live_server.url,
            "--model",
            str(model_id),
            "--version",
            version,
            "--data",
            str(data),
            "--roles",
            str(roles),
            "--run-id",
            f"test-{version}",
            "--poll",
            "0.5",
            "--timeout",
            "240",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_cli_fails_the_pipeline_on_a_failing_verdict_and_passes_it_on_a_passing_one(
    team, live_server, live_worker, media_root, tmp_path
) -> None:
    model = AIModelFactory(organization=team.organization, slug="sepsis-alert")
    upload_frame(team, clinical_frame(3000, seed=1), name="training", kind="reference", ai_model=model)
    _, token = services.api_token_create(
        organization=team.organization, user=team.owner, name="ci", scope="ci", actor=team.owner
    )
    data, roles = tmp_path / "eval.csv", tmp_path / "roles.json"
    clinical_frame(20_000, seed=5).to_csv(data, index=False)
    roles.write_text(json.dumps(CLINICAL_ROLES))

    failing = _gate(live_server, token, model.pk, "2.0.0", data, roles)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "VERDICT: FAIL" in failing.stdout and "disparate impact" in failing.stdout

    # A retried job (same run id) starts no second audit.
    retried = _gate(live_server, token, model.pk, "2.0.0", data, roles)
    assert retried.returncode == 1
    assert AuditRun.objects.filter(model_version__version="2.0.0").count() == 1

    audit_policy_update(
        ai_model=model,
        actor=team.owner,
        bounds={
            "disparate_impact": {"low": 0.3, "high": 3.0},
            "equal_opportunity_difference": {"low": -0.5, "high": 0.5},
        },
    )
    passing = _gate(live_server, token, model.pk, "2.0.1", data, roles)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "VERDICT: PASS" in passing.stdout


def test_the_cli_explains_a_missing_token_and_exits_2(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GOVERNANCE_TOKEN"}
    (tmp_path / "d.csv").write_text("a\n1\n")
    (tmp_path / "r.json").write_text("{}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "governance.cli",
            "gate",
            "--url",
            "http://127.0.0.1:9",
            "--model",
            "1",
            "--version",
            "1",
            "--data",
            str(tmp_path / "d.csv"),
            "--roles",
            str(tmp_path / "r.json"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "set GOVERNANCE_TOKEN" in result.stderr
