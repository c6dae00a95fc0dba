"""Deployment promises: production settings pass `check --deploy`, the web process starts without the
heavy libraries, settings fail loudly, and the compose file is valid."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k8#Qv!2mZ@r7Lw$9xT&4pN*6sB^1hJ%3yF(5cD)0gA-e_uI+oK=",
    "ALLOWED_HOSTS": "governance.example.org",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/governance",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
}


def _run(code_or_args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE", "CELERY", "SECRET"))}
    return subprocess.run(
        [sys.executable, *code_or_args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_check_deploy() -> None:
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_web_process_starts_without_the_heavy_libraries() -> None:
    code = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'governance.settings')\n"
        "from governance.wsgi import application\n"
        "from django.test import Client\n"
        "response = Client(HTTP_HOST='governance.example.org').get('/api/schema/', secure=True)\n"
        "assert response.status_code in (200, 401, 403), response.status_code\n"
        "import django.contrib.admin; django.contrib.admin.autodiscover()\n"
        "heavy = ['aif360', 'evidently', 'sklearn', 'matplotlib', 'scipy', 'pandas', 'pyarrow']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = _run(["-c", code], PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_a_setting_with_a_bad_value_stops_start_up_naming_it() -> None:
    result = _run(["manage.py", "check"], {**PRODUCTION, "DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = _run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr


def test_the_secret_key_can_come_from_a_file(tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(PRODUCTION["SECRET_KEY"] + "\n")
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='governance.settings'; django.setup(); "
        "from django.conf import settings; print(settings.SECRET_KEY)"
    )
    result = _run(["-c", code], {**env, "SECRET_KEY_FILE": str(secret)})
    assert result.stdout.strip() == PRODUCTION["SECRET_KEY"]


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed (.ci/run installs it)"
)
def test_the_compose_file_is_valid_and_runs_every_service_from_one_image() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", "docker/compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "SECRET_KEY": "compose-check"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    import yaml

    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "migrate"} <= set(services)
    assert {services[name]["image"] for name in ("web", "worker", "beat", "migrate")} == {
        "clinical-ai-governance:latest"
    }
    assert "celery" in services["worker"]["command"] and "worker" in services["worker"]["command"]
    assert services["worker"]["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    # Heavy audits and light tasks are consumed by separate workers, so a long audit never delays a sweep.
    commands = {name: services[name]["command"] for name in ("worker", "worker-light")}
    queue_of = {name: command[command.index("-Q") + 1] for name, command in commands.items()}
    assert queue_of == {"worker": "audits", "worker-light": "celery"}


def test_the_cluster_profile_adds_a_second_audit_worker_and_object_storage() -> None:
    env = {
        **os.environ,
        "SECRET_KEY": "compose-check",
        "S3_BUCKET": "governance",
        "S3_ENDPOINT_URL": "http://minio:9000",
    }
    result = subprocess.run(
        ["docker-compose", "-f", "docker/compose.yml", "--profile", "cluster", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    import yaml

    services = yaml.safe_load(result.stdout)["services"]
    assert {"worker-2", "minio", "minio-bucket"} <= set(services)
    second = services["worker-2"]["command"]
    assert second[second.index("-Q") + 1] == "audits"
    for name in ("web", "worker", "worker-2", "worker-light", "beat"):
        assert services[name]["environment"]["S3_BUCKET"] == "governance"
        assert services[name]["environment"]["S3_ENDPOINT_URL"] == "http://minio:9000"
