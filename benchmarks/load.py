"""The API under load: gunicorn with the production settings, driven by wrk on loopback.

    .venv/bin/python benchmarks/load.py [--seconds 20] [--connections 16] [--workers 3]

Needs the machine's PostgreSQL and Redis (as `make test` does) and wrk (Debian: `apt-get install wrk`).
It creates a database of its own (`governance_bench`, dropped and made again), migrates it, and seeds an
organization with a model, a version, a 2,000-row evaluation dataset and a finished audit. Then it
starts gunicorn as the Docker image and docker/compose.yml do (`governance.wsgi`, DEBUG=0, `--workers 3`,
persistent database connections `DB_CONN_MAX_AGE=60`, Redis as broker and cache) and drives it from wrk,
one scenario at a time:

- read, run: GET /api/v1/audits/{id}/ (the run with its whole result document, ~60 kB of JSON)
- read, list: GET /api/v1/models/ (a page of the inventory)
- upload: POST /api/v1/datasets/ (multipart: a 1,000-row CSV of 60 kB, checked, converted to
  Parquet, hashed, scanned for identifiers and stored; a new dataset each time)
- submit: POST /api/v1/audits/ (an audit queued and sent to Redis; no worker runs, so that the figure
  is the web process's)

For each: requests per second and the latency at p50 and p99 (wrk's --latency), and any non-2xx
answers. The web process and wrk share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASE_URL = "postgres://postgres@127.0.0.1:5432"
DATABASE = "governance_bench"

MULTIPART_LUA = """
local f = io.open(os.getenv("BENCH_UPLOAD"), "rb")
local body = f:read("*all")
f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. os.getenv("BENCH_BOUNDARY")
wrk.headers["Authorization"] = os.getenv("BENCH_TOKEN")
"""
JSON_POST_LUA = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_TOKEN")
"""
GET_LUA = """
wrk.headers["Authorization"] = os.getenv("BENCH_TOKEN")
"""
# wrk counts non-2xx/3xx answers here; done() prints them.
DONE_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("non2xx=%d\\n", summary.errors.status))
end
"""


def environment(workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"{BASE_URL}/{DATABASE}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/11",
        "CACHE_URL": "redis://127.0.0.1:6379/10",
        "MEDIA_ROOT": str(workdir / "media"),
        "STATIC_ROOT": str(workdir / "static"),
        "SECRET_KEY": "benchmark-secret-key-" + "x" * 40,
        "DEBUG": "0",
        "DB_CONN_MAX_AGE": os.environ.get("DB_CONN_MAX_AGE", "60"),  # as docker/compose.yml sets it
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "governance.settings",
    }


def prepare_database() -> None:
    for statement in (f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)", f"CREATE DATABASE {DATABASE}"):
        subprocess.run(["psql", f"{BASE_URL}/postgres", "-q", "-c", statement], check=True)


SEED = """
import io, json
import django
django.setup()
from django.contrib.auth import get_user_model
from audits.services import audit_run_create, audit_run_execute
from governance import services
from tests.data import CLINICAL_ROLES, clinical_frame

owner = get_user_model().objects.create_user("bench-owner", password="x")
organization = services.organization_create(name="Bench Hospital", slug="bench", creator=owner)
model = services.ai_model_create(
    organization=organization, actor=owner, owner=owner, name="Sepsis", slug="sepsis",
    intended_use="Early warning of sepsis",
)
version = services.model_version_create(ai_model=model, version="1.0.0", actor=owner)
frame = clinical_frame(2000, seed=7)
dataset = services.dataset_upload(
    organization=organization, ai_model=model, name="held-out", kind="evaluation",
    file=io.BytesIO(frame.to_csv(index=False).encode()), filename="held-out.csv",
    column_roles=CLINICAL_ROLES, actor=owner,
)
reference = services.dataset_upload(
    organization=organization, ai_model=model, name="reference", kind="reference",
    file=io.BytesIO(clinical_frame(2000, seed=8).to_csv(index=False).encode()), filename="reference.csv",
    column_roles=CLINICAL_ROLES, actor=owner,
)
run = audit_run_create(model_version=version, dataset=dataset, reference_dataset=reference, actor=owner)
audit_run_execute(run_id=run.pk, worker="bench")
_, token = services.api_token_create(organization=organization, user=owner, name="bench", scope="write", actor=owner)
print(json.dumps({"token": token, "run": run.pk, "version": version.pk, "dataset": dataset.pk}))
"""


def seed(env: dict[str, str]) -> dict[str, object]:
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    done = subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def multipart_upload(workdir: Path) -> tuple[Path, str, int]:
    from tests.data import CLINICAL_ROLES, clinical_frame

    boundary = "benchboundary7d93"
    csv = clinical_frame(1000, seed=9).to_csv(index=False).encode()
    parts = [
        (b'Content-Disposition: form-data; name="organization"', b"bench"),
        (b'Content-Disposition: form-data; name="name"', b"load upload"),
        (b'Content-Disposition: form-data; name="column_roles"', json.dumps(CLINICAL_ROLES).encode()),
        (b'Content-Disposition: form-data; name="file"; filename="cohort.csv"\r\nContent-Type: text/csv', csv),
    ]
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n" + value + b"\r\n" for head, value in parts)
    body += b"--" + boundary.encode() + b"--\r\n"
    path = workdir / "upload.multipart"
    path.write_bytes(body)
    return path, boundary, len(csv)


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def to_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, script: str, env: dict[str, str], args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    lua = workdir / "scenario.lua"
    lua.write_text(script + DONE_LUA)
    threads, duration = ["-t", "2", "-c", str(args.connections)], ["-d", f"{args.seconds}s"]
    command = ["wrk", *threads, *duration, "--latency", "-s", str(lua), url]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, flags=re.M))
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": to_ms(percentiles["50"]),
        "p99_ms": to_ms(percentiles["99"]),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(re.search(r"non2xx=(\d+)", out).group(1)),  # type: ignore[union-attr]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (the Docker image runs 3)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    workdir = Path(tempfile.mkdtemp(prefix="governance-load-"))
    env = environment(workdir)
    prepare_database()
    seeded = seed(env)
    port = 8765
    web = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "governance.wsgi:application", "--bind", f"127.0.0.1:{port}"),
            *("--workers", str(args.workers), "--timeout", "120", "--log-level", "warning"),
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for_port(port)
        upload, boundary, csv_bytes = multipart_upload(workdir)
        wrk_env = {
            **os.environ,
            "BENCH_TOKEN": f"Bearer {seeded['token']}",
            "BENCH_UPLOAD": str(upload),
            "BENCH_BOUNDARY": boundary,
            "BENCH_BODY": json.dumps({"model_version": seeded["version"], "dataset": seeded["dataset"]}),
        }
        base = f"http://127.0.0.1:{port}/api/v1"
        scenarios = {
            "read, run (GET /audits/{id}/)": (f"{base}/audits/{seeded['run']}/", GET_LUA),
            "read, list (GET /models/)": (f"{base}/models/", GET_LUA),
            f"upload (POST /datasets/, {csv_bytes // 1000} kB CSV)": (f"{base}/datasets/", MULTIPART_LUA),
            "submit (POST /audits/)": (f"{base}/audits/", JSON_POST_LUA),
        }
        results = {}
        for name, (url, script) in scenarios.items():
            results[name] = run_wrk(url, script, wrk_env, args, workdir)
    finally:
        web.terminate()
        web.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\nAPI under load: gunicorn --workers {args.workers}, wrk -t 2 -c {args.connections} -d {args.seconds}s, "
        f"{os.cpu_count()} cores, {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
    )
    print(f"{'scenario':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'non-2xx':>8}")
    for name, r in results.items():
        print(
            f"{name:<42} {r['requests_per_second']:>8.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r['requests']:>9} {r['non_2xx']:>8}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
