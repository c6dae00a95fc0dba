"""Synthetic clinical data with known properties, for tests and benchmarks. No Django imports."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def clinical_frame(n: int = 4000, seed: int = 7, *, shift: float = 0.0) -> pd.DataFrame:
    """A synthetic scored cohort with disparities built in: the model under-flags one group."""
    rng = np.random.default_rng(seed)
    race = rng.choice(["White", "Black", "Asian", "Hispanic"], size=n, p=[0.6, 0.2, 0.1, 0.1])
    sex = rng.choice(["female", "male"], size=n)
    age = rng.normal(62 + shift * 10, 14, size=n).round(0)
    lactate = rng.lognormal(0.4 + shift, 0.5, size=n).round(2)
    ward = rng.choice(["icu", "medical", "surgical"], size=n, p=[0.2, 0.5, 0.3])
    risk = 1 / (1 + np.exp(-(-3 + 0.03 * (age - 60) + 0.8 * lactate + (ward == "icu"))))
    label = (rng.random(n) < risk).astype(int)
    noise = rng.normal(0, 0.15, size=n)
    score = np.clip(risk + noise - 0.12 * (race == "Black"), 0, 1).round(4)
    prediction = (score >= 0.35).astype(int)
    return pd.DataFrame(
        {
            "race": race,
            "sex": sex,
            "age": age,
            "lactate": lactate,
            "ward": ward,
            "sepsis": label,
            "alert": prediction,
            "score": score,
        }
    )


CLINICAL_ROLES: dict[str, Any] = {
    "label": "sepsis",
    "prediction": "alert",
    "score": "score",
    "protected": [{"column": "race", "reference": "White"}, {"column": "sex", "reference": None}],
    "features": ["age", "lactate", "ward"],
}


def production_frames(
    n: int, seed: int, *, start: str, days: int, shift: float = 0.0, first_id: int = 1, outcome_share: float = 0.9
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A production log of a deployed model: scored encounters spread over `days` from `start` (predictions,
    without the outcome), and the outcomes of a share of them, as they arrive later."""
    frame = clinical_frame(n, seed=seed, shift=shift)
    rng = np.random.default_rng(seed + 1000)
    frame.insert(0, "encounter_id", np.arange(first_id, first_id + n))
    offsets = np.sort(rng.uniform(0, days * 86400, size=n)).astype("int64")
    times = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(offsets, unit="s")
    frame.insert(1, "scored_at", times.strftime("%Y-%m-%dT%H:%M:%SZ"))
    known = rng.random(n) < outcome_share
    outcomes = frame.loc[known, ["encounter_id", "sepsis"]].reset_index(drop=True)
    return frame.drop(columns=["sepsis"]), outcomes


STREAM_ROLES: dict[str, Any] = {
    **{k: v for k, v in CLINICAL_ROLES.items() if k != "label"},
    "record_id": "encounter_id",
    "timestamp": "scored_at",
}
OUTCOME_ROLES: dict[str, Any] = {"record_id": "encounter_id", "label": "sepsis"}
