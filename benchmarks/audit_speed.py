"""The full audit against Evidently's presets and aif360's metric classes, on the same data, in one run.

    .venv/bin/python benchmarks/audit_speed.py --rows 1000000            # ours, Evidently, aif360
    .venv/bin/python benchmarks/audit_speed.py --rows 10000000 --peers none

Data: a reference and a current cohort of --rows rows each (benchmarks/data.py): 3 protected
attributes (race 5 groups, sex 2, age band 4), 50 features (30 continuous, 10 counts, 10
categorical), a label, a prediction and a score, stored as Parquet (zstd, row groups of 100k)
as the service stores datasets. Generated once into --data-dir and reused.

Contenders, each in a fresh process so that its peak memory (VmHWM) is its own:
- ours: audits.engines.audit.audit_chunks over the Parquet files chunk by chunk: fairness for
  every group and pairwise intersection (49 groups, 43 comparisons, 430 disparities with intervals and adjusted

  p-values, AUROC and calibration), label-choice, drift of 53 columns with PSI and within-group
  drift of the outputs, quality against the reference. Parquet reading is included.
- evidently: Report([DataDriftPreset(), DataSummaryPreset()]).run on the same 53 columns of
  both cohorts, already loaded into pandas (loading is not timed).
- aif360: BinaryLabelDataset + ClassificationMetric for each of the same 43 group comparisons
  (every attribute and pairwise intersection), the seven metrics both tools define, without
  intervals (aif360 gives none). Loading into pandas is not timed.
Not timed anywhere: data generation. Rendering Evidently's HTML is not part of either.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
os.environ.setdefault("DEBUG", "1")


def peak_memory_mb() -> float:
    """This process's peak resident memory (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def data_files(data_dir: Path, rows: int) -> tuple[Path, Path]:
    from benchmarks.data import write_parquet

    data_dir.mkdir(parents=True, exist_ok=True)
    reference, current = data_dir / f"reference-{rows}.parquet", data_dir / f"current-{rows}.parquet"
    if not reference.exists():
        write_parquet(reference, rows, seed=1)
    if not current.exists():
        write_parquet(current, rows, seed=2, shift=0.2)
    return reference, current


def machine_and_data(data_dir: Path, rows: int) -> tuple[Path, Path]:
    """Print the machine and the date, and make (or reuse) the two cohorts of `rows` rows; their paths."""
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
        f"python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    start = time.perf_counter()
    reference, current = data_files(data_dir, rows)
    print(f"data: {rows:,} rows per cohort, 50 features ({time.perf_counter() - start:.0f} s to prepare)")
    return reference, current


def run_ours(reference: Path, current: Path) -> dict[str, object]:
    import pyarrow.parquet as pq

    from audits.engines.audit import audit_chunks, drift_column_types
    from audits.engines.tables import ColumnRoles, iter_parquet_chunks, numeric_ranges
    from benchmarks.data import ROLES

    start = time.perf_counter()
    roles = ColumnRoles.from_dict(ROLES)
    schema = [{"name": f.name, "dtype": str(f.type)} for f in pq.read_schema(current)]
    reference_schema = [{"name": f.name, "dtype": str(f.type)} for f in pq.read_schema(reference)]
    numerical, _ = drift_column_types(roles, schema, reference_schema)
    ranges = numeric_ranges([str(current), str(reference)], numerical)
    result, _ = audit_chunks(
        iter_parquet_chunks(str(current), columns=roles.all_columns()),
        roles=roles,
        reference_chunks=iter_parquet_chunks(str(reference), columns=roles.all_columns()),
        schema=schema,
        reference_schema=reference_schema,
        numeric_ranges=ranges,
    )
    seconds = time.perf_counter() - start
    approximate = [c["column"] for c in result["drift"]["columns"] if c["approximate"]]
    return {
        "seconds": seconds,
        "groups": len(result["fairness"]["groups"]),
        "disparities": len(result["fairness"]["disparities"]),
        "drift_columns": len(result["drift"]["columns"]),
        "approximate_drift_columns": approximate,
        "verdict": result["verdict"],
    }


def _frames(reference: Path, current: Path):
    import pandas as pd

    from benchmarks.data import ROLES

    columns = [*ROLES["features"], "score", "prediction", "label"]
    return pd.read_parquet(reference, columns=columns), pd.read_parquet(current, columns=columns), columns


def run_evidently(reference: Path, current: Path) -> dict[str, object]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    reference_frame, current_frame, columns = _frames(reference, current)
    categorical = [c for c in columns if c.startswith("cat_") or c in ("prediction", "label")]
    for frame in (reference_frame, current_frame):
        # Evidently's value counts refuse numpy int8 labels.
        frame[["prediction", "label"]] = frame[["prediction", "label"]].astype("int64")
    numerical = [c for c in columns if c not in categorical]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    start = time.perf_counter()
    Report([DataDriftPreset(), DataSummaryPreset()]).run(
        Dataset.from_pandas(current_frame, data_definition=definition),
        Dataset.from_pandas(reference_frame, data_definition=definition),
    )
    return {"seconds": time.perf_counter() - start}


def run_aif360(reference: Path, current: Path) -> dict[str, object]:
    import warnings

    import pandas as pd
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    frame = pd.read_parquet(current, columns=["race", "sex", "age_band", "label", "prediction"])
    references = {"race": "White", "sex": "female", "age_band": "45-64"}
    start = time.perf_counter()
    comparisons = 0
    protected = ["race", "sex", "age_band"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for attributes in [(a,) for a in protected] + list(itertools.combinations(protected, 2)):
            codes = {a: {v: float(i) for i, v in enumerate(sorted(frame[a].unique()))} for a in attributes}
            truth = pd.DataFrame({"label": frame["label"].astype(float)})
            for a in attributes:
                truth[a] = frame[a].map(codes[a])
            dataset = BinaryLabelDataset(df=truth, label_names=["label"], protected_attribute_names=list(attributes))
            predicted = dataset.copy(deepcopy=True)
            predicted.labels = frame["prediction"].to_numpy(dtype=float).reshape(-1, 1)
            privileged = [{a: codes[a][references[a]] for a in attributes}]
            for combination in itertools.product(*(sorted(codes[a]) for a in attributes)):
                condition = [{a: codes[a][v] for a, v in zip(attributes, combination, strict=True)}]
                if condition == privileged:
                    continue
                metric = ClassificationMetric(
                    dataset, predicted, unprivileged_groups=condition, privileged_groups=privileged
                )
                for name in (
                    "statistical_parity_difference",
                    "disparate_impact",
                    "equal_opportunity_difference",
                    "average_odds_difference",
                    "false_positive_rate_difference",
                    "false_negative_rate_difference",
                ):
                    getattr(metric, name)()
                metric.difference(metric.positive_predictive_value)
                comparisons += 1
    return {"seconds": time.perf_counter() - start, "comparisons": comparisons}


CONTENDERS = {"ours": run_ours, "evidently": run_evidently, "aif360": run_aif360}


def child(name: str, reference: Path, current: Path) -> None:
    result = CONTENDERS[name](reference, current)
    result["peak_mb"] = peak_memory_mb()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peers", default="evidently,aif360", help="comma-separated, or 'none'")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--current", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child, options.reference, options.current)
        return

    reference, current = machine_and_data(options.data_dir, options.rows)
    peers = [] if options.peers == "none" else [p.strip() for p in options.peers.split(",") if p.strip()]
    compare_contenders(peers, reference, current)


def compare_contenders(peers: list[str], reference: Path, current: Path, label: str = "") -> dict[str, dict]:
    """Ours and each peer on the same two files, each in a fresh process; prints times, memory and ratios."""
    results = {}
    for name in ["ours", *peers]:
        completed = subprocess.run(
            [sys.executable, __file__, "--child", name, "--reference", str(reference), "--current", str(current)],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            print(f"{name}: failed (exit {completed.returncode}): {completed.stderr.strip()[-400:]}")
            continue
        results[name] = json.loads(completed.stdout.strip().splitlines()[-1])
        extra = {k: v for k, v in results[name].items() if k not in ("seconds", "peak_mb")}
        print(
            f"{label}{name:<10} {results[name]['seconds']:8.2f} s   peak {results[name]['peak_mb']:7.0f} MiB   {extra}"
        )
    ours = results.get("ours")
    if ours:
        for name in peers:
            if name in results:
                print(
                    f"{label}ratio {name}/ours: {results[name]['seconds'] / ours['seconds']:.1f}x time, "
                    f"{results[name]['peak_mb'] / ours['peak_mb']:.1f}x memory"
                )
    return results


if __name__ == "__main__":
    main()
