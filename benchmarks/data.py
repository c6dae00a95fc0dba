"""Healthcare-like scored cohorts for the benchmarks: 3 protected attributes, ~50 features, a label,
a prediction and a score, written to Parquet in row groups as the service stores datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

RACES = ["White", "Black", "Hispanic", "Asian", "Other"]
AGE_BANDS = ["18-44", "45-64", "65-79", "80+"]
WARDS = ["icu", "medical", "surgical", "oncology", "cardiology", "neurology", "er", "obstetrics"]


def cohort(n: int, *, seed: int, shift: float = 0.0, features: int = 50) -> pd.DataFrame:
    """n encounters with `features` features: 30 continuous, 10 integer counts, 10 categorical."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {
        "race": rng.choice(RACES, n, p=[0.6, 0.18, 0.12, 0.06, 0.04]),
        "sex": rng.choice(["female", "male"], n),
        "age_band": rng.choice(AGE_BANDS, n, p=[0.25, 0.35, 0.25, 0.15]),
    }
    continuous = int(features * 0.6)
    counts = int(features * 0.2)
    categorical = features - continuous - counts
    for i in range(continuous):
        data[f"lab_{i:02d}"] = rng.normal(shift * (i % 3 == 0), 1, n).round(3)
    for i in range(counts):
        data[f"count_{i:02d}"] = rng.poisson(2 + shift * (i % 2), n)
    for i in range(categorical):
        data[f"cat_{i:02d}"] = rng.choice(WARDS[: 3 + i % 6], n)
    risk = 1 / (1 + np.exp(-(data["lab_00"] + 0.3 * data["count_00"] - 1.5 - 0.4 * (data["race"] == "Black"))))
    data["label"] = (rng.random(n) < risk).astype(np.int8)
    data["score"] = np.clip(risk + rng.normal(0, 0.1, n), 0, 1).round(4)
    data["prediction"] = (data["score"] >= 0.5).astype(np.int8)
    return pd.DataFrame(data)


def feature_names(features: int = 50) -> list[str]:
    continuous = int(features * 0.6)
    counts = int(features * 0.2)
    return (
        [f"lab_{i:02d}" for i in range(continuous)]
        + [f"count_{i:02d}" for i in range(counts)]
        + [f"cat_{i:02d}" for i in range(features - continuous - counts)]
    )


def write_parquet(
    path: Path, n: int, *, seed: int, shift: float = 0.0, features: int = 50, block: int = 1_000_000
) -> Path:
    """Write n rows in blocks (so 10M rows never sit in memory at once), row groups of 100k."""
    writer = None
    for start in range(0, n, block):
        frame = cohort(min(block, n - start), seed=seed + start, shift=shift, features=features)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=100_000)
    assert writer is not None
    writer.close()
    return path


ROLES = {
    "label": "label",
    "prediction": "prediction",
    "score": "score",
    "protected": [{"column": "race", "reference": "White"}, {"column": "sex"}, {"column": "age_band"}],
    "features": feature_names(),
}
