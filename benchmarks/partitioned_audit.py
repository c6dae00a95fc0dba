"""A 10M-row audit fanned out over partitions, on one worker process and on two, with the peers on the same data.

    .venv/bin/python benchmarks/partitioned_audit.py                      # 10M rows, 10 partitions, peers
    .venv/bin/python benchmarks/partitioned_audit.py --rows 2000000 --partitions 4 --peers none

Needs the machine's PostgreSQL and Redis (as `make test` does). It makes a database of its own
(`governance_bench_fanout`, dropped and made again) and a media folder under --work-dir.

Data (benchmarks/data.py, as benchmarks/audit_speed.py): a current cohort and a shifted reference of
--rows rows each, 3 protected attributes, 50 features, label, prediction and score. Both are uploaded
through the service (`dataset_upload`: checked, scanned for identifiers, stored as --partitions
Parquet partitions), so the ingest rate is measured too.

Scenarios, each a real audit run (reference and data partitions, then the merge) carried out by real
Celery worker processes on Redis, timed from submission to `succeeded`:

1. single pass: one worker process reads every partition in turn (AUDIT_FAN_OUT=0), the baseline;
2. fanned out, one worker process: the same work as tasks, one at a time;
3. fanned out, two worker processes consuming one queue (`--concurrency=2`);
4. fanned out, two worker processes with separate queues (AUDIT_PARTITION_QUEUES=audits-a,audits-b:
   partition i goes to queue i mod 2), as two machines would take them.

From scenario 2 it takes the cost of each partition task and of the merge (RunTask.seconds) and the
overhead around them, and projects the time on N machines of this kind:
    T(N) = overhead + ceil(reference partitions / N) x reference task + ceil(data partitions / N) x data task
           + merge
and checks the projection for N = 2 against scenario 4. Each fanned-out run's metrics are compared
with the single pass's: equal counts, verdict and findings, and the largest relative difference of
any other value.

Peers: Evidently (DataDriftPreset + DataSummaryPreset) and aif360 (ClassificationMetric, 43
comparisons) on the first 1M rows of the same cohorts (the first partition: benchmarks/data.py writes
the same rows for the same seed), in fresh processes through benchmarks/audit_speed.py, against our
single-process audit of those rows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASE_URL = "postgres://postgres@127.0.0.1:5432"
DATABASE = "governance_bench_fanout"

SEED = """
import json, sys, time
import django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from governance import services
from benchmarks.data import ROLES

reference_path, current_path, partition_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings.DATASET_PARTITION_ROWS = partition_rows
settings.DATASET_PARTITION_BYTES = 2**40
settings.DATASET_MAX_UPLOAD_BYTES = 2**40
owner = get_user_model().objects.create_user("bench-owner", password="x")
organization = services.organization_create(name="Bench Hospital", slug="bench", creator=owner)
model = services.ai_model_create(
    organization=organization, actor=owner, owner=owner, name="Sepsis", slug="sepsis",
    intended_use="Early warning of sepsis",
)
version = services.model_version_create(ai_model=model, version="1.0.0", actor=owner)
out = {"version": version.pk}
for name, path, kind in (("reference", reference_path, "reference"), ("current", current_path, "evaluation")):
    start = time.perf_counter()
    with open(path, "rb") as data:
        dataset = services.dataset_upload(
            organization=organization, ai_model=model, name=name, kind=kind, file=data,
            filename=path.rsplit("/", 1)[-1], column_roles=ROLES, actor=owner,
        )
    out[name] = {"id": dataset.pk, "rows": dataset.row_count, "partitions": dataset.partition_count,
                 "seconds": time.perf_counter() - start}
print(json.dumps(out))
"""

SUBMIT = """
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from audits.services import audit_run_create
from governance.models import Dataset, ModelVersion

version, current, reference = (int(x) for x in sys.argv[1:4])
run = audit_run_create(
    model_version=ModelVersion.objects.get(pk=version), dataset=Dataset.objects.get(pk=current),
    reference_dataset=Dataset.objects.get(pk=reference), actor=get_user_model().objects.get(username="bench-owner"),
)
print(run.pk)
"""

STATUS = """
import json, sys
import django
django.setup()
from audits.models import AuditRun, RunTask
run = AuditRun.objects.get(pk=int(sys.argv[1]))
tasks = [
    {"stage": t.stage, "index": t.index, "seconds": t.seconds, "rows": t.rows, "tries": t.tries, "worker": t.worker}
    for t in RunTask.objects.filter(run=run, attempt=run.attempt)
]
metrics = [
    [m.category, m.metric, m.attribute, m.group, m.reference_group, m.column, m.value, m.ci_low, m.ci_high, m.n]
    for m in run.metrics.all()
]
print(json.dumps({
    "status": run.status, "error": run.error, "verdict": run.verdict, "tasks": tasks, "metrics": metrics,
    "findings": sorted([f.severity, f.message] for f in run.findings.all()),
    "seconds": (run.finished_at - run.created_at).total_seconds() if run.finished_at else None,
}))
"""


def environment(work_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"{BASE_URL}/{DATABASE}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/12",
        "CACHE_URL": "redis://127.0.0.1:6379/13",
        "MEDIA_ROOT": str(work_dir / "media"),
        "SECRET_KEY": "benchmark-secret-key-" + "x" * 40,
        "DEBUG": "1",
        "DB_CONN_MAX_AGE": "60",
        "DJANGO_SETTINGS_MODULE": "governance.settings",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def django(script: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1]


class Memory:
    """Peak resident memory of each worker pool process, sampled every 0.2 s from /proc."""

    def __init__(self, roots: list[subprocess.Popen[bytes]]) -> None:
        self.roots, self.peaks, self.running = roots, {}, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running:
            for pid in self._tree():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peaks[pid] = max(self.peaks.get(pid, 0), int(line.split()[1]) // 1024)
                except (FileNotFoundError, ProcessLookupError):
                    pass
            time.sleep(0.2)

    def _tree(self) -> list[int]:
        pids = [p.pid for p in self.roots]
        for pid in list(pids):
            children = Path(f"/proc/{pid}/task/{pid}/children")
            if children.exists():
                pids += [int(c) for c in children.read_text().split()]
        return pids

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return max(self.peaks.values(), default=0)


def start_worker(
    env: dict[str, str], name: str, queues: str, concurrency: int, cores: str, log: Path
) -> subprocess.Popen[bytes]:
    """A Celery worker pinned to `cores`, each pool process with one Arrow and BLAS thread: one core, one process."""
    env = {**env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    command = ["taskset", "-c", cores, sys.executable, "-m", "celery", "-A", "governance", "worker", "-Q", queues]
    command += ["--pool=prefork"]
    command += [f"--concurrency={concurrency}", "-n", f"{name}@%h", "--loglevel=INFO", "--without-mingle"]
    command += ["--without-gossip", "--prefetch-multiplier=1"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def scenario(
    name: str, env: dict[str, str], seeded: dict, workers: list[tuple[str, int, str]], work_dir: Path
) -> dict[str, object]:
    subprocess.run(["redis-cli", "-n", "12", "FLUSHDB"], check=True, capture_output=True)
    processes = [
        start_worker(env, f"w{i}", queues, concurrency, cores, work_dir / f"worker-{name}-{i}.log")
        for i, (queues, concurrency, cores) in enumerate(workers)
    ]
    time.sleep(8)  # workers up and listening before the clock starts
    memory = Memory(processes)
    try:
        run = django(SUBMIT, env, str(seeded["version"]), str(seeded["current"]["id"]), str(seeded["reference"]["id"]))
        # Polled with psql, not Python, so that the poller takes next to no CPU from the workers. The
        # merge marks itself done just after it stores the run's results.
        query = (
            f"SELECT status FROM audits_auditrun WHERE id = {int(run)} AND (status = 'failed' OR "  # noqa: S608
            f"(status = 'succeeded' AND NOT EXISTS (SELECT 1 FROM audits_runtask t WHERE t.run_id = {int(run)} "
            f"AND t.seconds IS NULL AND t.attempt = audits_auditrun.attempt)))"
        )
        while not subprocess.run(
            ["psql", f"{BASE_URL}/{DATABASE}", "-tAc", query], capture_output=True, text=True, check=True
        ).stdout.strip():
            time.sleep(0.5)
        status = json.loads(django(STATUS, env, run))
    finally:
        peak = memory.stop()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=120)
    if status["status"] != "succeeded":
        raise SystemExit(f"{name}: the run failed: {status['error']}")
    status["peak_mb"] = peak
    return status


def describe_tasks(status: dict) -> dict[str, list[float]]:
    by_stage: dict[str, list[float]] = {}
    for task in status["tasks"]:
        by_stage.setdefault(task["stage"], []).append(task["seconds"] or 0.0)
    return by_stage


def compare(single: dict, other: dict) -> str:
    """Exact on counts, verdict and findings; the largest relative difference of the other numbers."""
    key = lambda m: tuple(str(x) for x in m[:6])  # noqa: E731
    ours, theirs = {key(m): m for m in single["metrics"]}, {key(m): m for m in other["metrics"]}
    if ours.keys() != theirs.keys() or single["verdict"] != other["verdict"]:
        return "DIFFERENT metrics or verdict"
    if single["findings"] != other["findings"]:
        return "DIFFERENT findings"
    worst, counts_equal = 0.0, True
    for k, m in ours.items():
        t = theirs[k]
        counts_equal &= m[9] == t[9]
        for a, b in zip(m[6:9], t[6:9], strict=True):
            if a is None or b is None:
                counts_equal &= a is b
            elif a != b:
                worst = max(worst, abs(a - b) / max(abs(a), abs(b), 1e-300))
    return f"{len(ours)} metrics, counts {'equal' if counts_equal else 'DIFFERENT'}, findings and verdict equal, " + (
        "every value equal" if worst == 0 else f"largest relative difference {worst:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--peers", default="evidently,aif360", help="comma-separated, or 'none'")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / "out" / "fanout")
    options = parser.parse_args()

    from benchmarks.audit_speed import compare_contenders, data_files, machine_and_data

    reference, current = machine_and_data(options.data_dir, options.rows)

    shutil.rmtree(options.work_dir, ignore_errors=True)
    options.work_dir.mkdir(parents=True)
    for statement in (f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)", f"CREATE DATABASE {DATABASE}"):
        subprocess.run(["psql", f"{BASE_URL}/postgres", "-q", "-c", statement], check=True)
    env = environment(options.work_dir)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    partition_rows = math.ceil(options.rows / options.partitions)
    seeded = json.loads(django(SEED, env, str(reference), str(current), str(partition_rows)))
    for name in ("reference", "current"):
        s = seeded[name]
        print(
            f"ingest {name}: {s['rows']:,} rows into {s['partitions']} partitions in {s['seconds']:.1f} s "
            f"({s['rows'] / s['seconds'] / 1000:.0f}k rows/s, Parquet upload, one process)"
        )

    runs = {
        "single pass, 1 process": (environment(options.work_dir, AUDIT_FAN_OUT="0"), [("audits,celery", 1, "0")]),
        "fanned out, 1 process": (env, [("audits,celery", 1, "0")]),
        "fanned out, 2 processes, one queue": (env, [("audits,celery", 2, "0,1")]),
        "fanned out, 2 processes, separate queues": (
            environment(options.work_dir, AUDIT_PARTITION_QUEUES="audits-a,audits-b"),
            [("audits,celery,audits-a", 1, "0"), ("audits-b", 1, "1")],
        ),
    }
    results = {}
    for name, (scenario_env, workers) in runs.items():
        results[name] = scenario(name, scenario_env, seeded, workers, options.work_dir)
        status = results[name]
        stages = describe_tasks(status)
        detail = ", ".join(
            f"{stage} {len(times)} x {sum(times) / len(times):.1f} s (max {max(times):.1f})"
            for stage, times in stages.items()
        )
        print(f"{name:<42} {status['seconds']:7.1f} s   peak/process {status['peak_mb']:6,} MiB   {detail}")

    single = results["single pass, 1 process"]
    for name, status in results.items():
        if name != "single pass, 1 process":
            print(f"  {name}: {compare(single, status)}")

    one = results["fanned out, 1 process"]
    stages = describe_tasks(one)
    work = sum(sum(times) for times in stages.values())
    overhead = one["seconds"] - work
    mean = {stage: sum(times) / len(times) for stage, times in stages.items()}

    def projected(n: int, *, pinned: bool = False) -> float:
        """Replay the run's schedule on n machines with the measured mean costs.

        The reference partitions and the report are queued first, the data partitions when the last
        reference partition is done, the merge when everything else is. With one shared queue a task
        goes to the first machine free; `pinned` replays AUDIT_PARTITION_QUEUES instead: partition i on
        machine i mod n, the report and the merge on the first.
        """
        free = [0.0] * n

        def take(duration: float, index: int, ready: float = 0.0) -> float:
            machine = index % n if pinned else min(range(n), key=free.__getitem__)
            free[machine] = max(free[machine], ready) + duration
            return free[machine]

        reference_n = len(stages.get("reference", []))
        ends = [take(mean["reference"], i) for i in range(reference_n)]
        report_end = take(mean["report"], 0) if "report" in mean else 0.0
        reference_end = max(ends, default=0.0)
        data_end = max(take(mean["data"], i, reference_end) for i in range(len(stages["data"])))
        return overhead + max(data_end, report_end) + mean["merge"]

    print(
        f"costs (fanned out, 1 process): reference partition {mean.get('reference', 0):.1f} s, data partition "
        f"{mean['data']:.1f} s, Evidently's report {mean.get('report', 0):.1f} s, merge {mean['merge']:.1f} s, "
        f"overhead {overhead:.1f} s (plan, dispatch, claims)"
    )
    print(
        "projected on N machines: "
        + ", ".join(f"N={n}: {projected(n):.0f} s" for n in (1, 2, 4, 5, 10, 20))
        + " (the floor: the longer of Evidently's report and one reference plus one data partition, then the merge)"
    )
    for name, pinned in (
        ("fanned out, 2 processes, one queue", False),
        ("fanned out, 2 processes, separate queues", True),
    ):
        measured, expected = results[name]["seconds"], projected(2, pinned=pinned)
        print(f"check N=2, {name}: projected {expected:.1f} s, measured {measured:.1f} s ({measured / expected:.2f}x)")

    peers = [] if options.peers == "none" else [p.strip() for p in options.peers.split(",") if p.strip()]
    if peers:
        first_reference, first_current = data_files(options.data_dir, min(options.rows, partition_rows))
        compare_contenders(peers, first_reference, first_current, label=f"one partition ({partition_rows:,} rows): ")


if __name__ == "__main__":
    main()
