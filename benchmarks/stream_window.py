"""The production stream: checking and storing prediction batches, and cutting a window with outcomes joined.

    .venv/bin/python benchmarks/stream_window.py --rows 1000000 --batches 10

Data: --rows scored encounters (benchmarks/data.py: 3 protected attributes, 50 features, score and
prediction) with a record id and an event time spread over 14 days, split into --batches predictions
batches; the outcomes of 90% of them in two outcomes batches. Each step runs in a fresh process, so
that its peak memory (VmHWM) is its own:

- ingest: what prediction_batch_upload does to a batch before the database row: read the upload
  (Parquet, and CSV), check it against its roles, scan it for direct identifiers, write it as zstd
  Parquet in row groups. Rows per second over all batches.
- window: what production_window_snapshot does before dataset_upload: read the batches' columns from
  Parquet, cut the last 7 days, keep the latest score per record, join the latest outcomes.
- pandas: the same window by hand with pandas (read, filter, sort, drop duplicates, merge): the
  reference for the cost of the join itself. Not a peer tool: no governance library does this.
No database or storage backend is involved: the figures are the engine's.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
os.environ.setdefault("DEBUG", "1")

START = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = (START + timedelta(days=7), START + timedelta(days=14))
FEATURES = (
    [f"lab_{i:02d}" for i in range(30)] + [f"count_{i:02d}" for i in range(10)] + [f"cat_{i:02d}" for i in range(10)]
)
PREDICTION_ROLES = {
    "record_id": "encounter_id",
    "timestamp": "scored_at",
    "score": "score",
    "prediction": "prediction",
    "protected": [{"column": "race", "reference": "White"}, {"column": "sex"}, {"column": "age_band"}],
    "features": FEATURES,
}
OUTCOME_ROLES = {"record_id": "encounter_id", "label": "label"}


def peak_memory_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def batch_files(data_dir: Path, rows: int, batches: int) -> tuple[list[Path], list[Path]]:
    """Predictions and outcomes batches as Parquet files, generated once."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.data import cohort

    folder = data_dir / f"stream-{rows}-{batches}"
    # The last batch holds the re-scored encounters, sent later.
    predictions = [folder / f"predictions-{i}.parquet" for i in range(batches + 1)]
    outcomes = [folder / f"outcomes-{i}.parquet" for i in range(2)]
    if all(p.exists() for p in predictions + outcomes):
        return predictions, outcomes
    folder.mkdir(parents=True, exist_ok=True)
    frame = cohort(rows, seed=11)
    rng = np.random.default_rng(12)
    frame.insert(0, "encounter_id", np.arange(1, rows + 1))
    seconds = np.sort(rng.uniform(0, 14 * 86400, rows)).astype("int64")
    frame.insert(1, "scored_at", pd.Timestamp(START) + pd.to_timedelta(seconds, unit="s"))
    # 1% of encounters are scored again later (a re-admission of the same record id).
    again = frame.sample(frac=0.01, random_state=13).assign(scored_at=lambda f: f["scored_at"] + timedelta(hours=6))
    stream = frame.drop(columns=["label"])
    for i, part in enumerate(np.array_split(np.arange(rows), batches)):
        pq.write_table(pa.Table.from_pandas(stream.iloc[part], preserve_index=False), predictions[i])
    pq.write_table(pa.Table.from_pandas(again.drop(columns=["label"]), preserve_index=False), predictions[-1])
    known = frame.loc[rng.random(rows) < 0.9, ["encounter_id", "label"]]
    half = len(known) // 2
    pq.write_table(pa.Table.from_pandas(known.iloc[:half], preserve_index=False), outcomes[0])
    pq.write_table(pa.Table.from_pandas(known.iloc[half:], preserve_index=False), outcomes[1])
    return predictions, outcomes


def run_ingest(predictions: list[Path], fmt: str) -> dict[str, float]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from audits.engines.identifiers import scan_identifiers
    from audits.engines.stream import check_batch, stream_roles
    from audits.engines.tables import read_table

    roles = stream_roles(PREDICTION_ROLES, kind="predictions")
    uploads = []
    for path in predictions:
        if fmt == "csv":
            buffer = io.BytesIO()
            pacsv.write_csv(pq.read_table(path), buffer)
            uploads.append(buffer.getvalue())
        else:
            uploads.append(path.read_bytes())
    rows = 0
    started = time.perf_counter()
    for payload in uploads:
        loaded = read_table(io.BytesIO(payload), filename=f"batch.{fmt}")
        check_batch(loaded.table, roles, kind="predictions")
        scan_identifiers(loaded.table)
        pq.write_table(loaded.table, io.BytesIO(), row_group_size=100_000, compression="zstd")
        rows += loaded.table.num_rows
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "rows_per_second": rows / seconds}


def run_window(predictions: list[Path], outcomes: list[Path]) -> dict[str, float]:
    import pyarrow.parquet as pq

    from audits.engines.stream import Batch, batch_columns, stream_roles, window_table

    started = time.perf_counter()
    batches = []
    for i, path in enumerate(predictions):
        roles = stream_roles(PREDICTION_ROLES, kind="predictions")
        table = pq.read_table(path, columns=batch_columns(roles))
        batches.append(Batch(batch_id=i, roles=roles, table=table, received_at=START))
    answers = []
    for i, path in enumerate(outcomes):
        roles = stream_roles(OUTCOME_ROLES, kind="outcomes")
        answers.append(Batch(batch_id=100 + i, roles=roles, table=pq.read_table(path), received_at=START))
    window = window_table(batches, answers, start=WINDOW[0], end=WINDOW[1])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, **window.statistics}


def run_pandas(predictions: list[Path], outcomes: list[Path]) -> dict[str, float]:
    import pandas as pd

    started = time.perf_counter()
    columns = ["encounter_id", "scored_at", "score", "prediction", "race", "sex", "age_band", *FEATURES]
    frame = pd.concat([pd.read_parquet(p, columns=columns) for p in predictions], ignore_index=True)
    frame = frame[(frame["scored_at"] >= WINDOW[0]) & (frame["scored_at"] < WINDOW[1])]
    frame = frame.sort_values("scored_at", kind="stable").drop_duplicates("encounter_id", keep="last")
    known = pd.concat([pd.read_parquet(p) for p in outcomes], ignore_index=True).drop_duplicates(
        "encounter_id", keep="last"
    )
    joined = frame.merge(known, on="encounter_id", how="inner")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(joined)}


def child(step: str, args: argparse.Namespace) -> None:
    import django

    django.setup()
    predictions, outcomes = batch_files(Path(args.data_dir), args.rows, args.batches)
    if step.startswith("ingest"):
        result = run_ingest(predictions, step.split("-")[1])
    elif step == "window":
        result = run_window(predictions, outcomes)
    else:
        result = run_pandas(predictions, outcomes)
    print(json.dumps({**result, "peak_mb": peak_memory_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--data-dir", default=str(ROOT / "var" / "bench"))
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        child(args.step, args)
        return
    batch_files(Path(args.data_dir), args.rows, args.batches)
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    print(f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, {when}")
    print(f"{args.rows:,} predictions in {args.batches} batches (+1% re-scored in one more), outcomes for 90% in 2")
    results = {}
    for step in ("ingest-parquet", "ingest-csv", "window", "pandas"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--step",
                step,
                "--rows",
                str(args.rows),
                "--batches",
                str(args.batches),
                "--data-dir",
                args.data_dir,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[step] = json.loads(out.stdout.strip().splitlines()[-1])
        line = results[step]
        extra = f", {line['rows_per_second']:,.0f} rows/s" if "rows_per_second" in line else ""
        print(f"{step:15} {line['seconds']:7.2f} s  peak {line['peak_mb']:7.0f} MiB{extra}")
    window, pandas = results["window"], results["pandas"]
    print(
        f"window: {window['rows']:,} rows audited of {window['predictions_in_window']:,} in the window "
        f"({window['rescored_records_dropped']:,} re-scored, {window['awaiting_outcome']:,} awaiting outcome); "
        f"hand-written pandas join: {pandas['rows']:,} rows, {window['seconds'] / pandas['seconds']:.1f}x its time"
    )


if __name__ == "__main__":
    main()
