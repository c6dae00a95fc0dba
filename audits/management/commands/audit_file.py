"""Audit a CSV, Parquet or Arrow file with the service's engines, without the registry.

    python manage.py audit_file DATA.csv --label y --prediction y_hat --score p \
        --protected race=White,sex --reference TRAIN.csv --format json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audits.engines.errors import TableError


class Command(BaseCommand):
    help = "Audit a CSV, Parquet or Arrow file for fairness, drift and data quality; JSON goes to standard output."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("data", help="CSV, Parquet or Arrow file to audit")
        parser.add_argument("--label", required=True, help="column with the observed outcome (0/1)")
        parser.add_argument(
            "--prediction", help="column with the model's decision (0/1); without it, score >= operating point"
        )
        parser.add_argument("--score", help="column with the model's score")
        parser.add_argument(
            "--protected", required=True, help="COL[=REFERENCE_GROUP][,COL[=REFERENCE_GROUP]]: the protected attributes"
        )
        parser.add_argument(
            "--features", help="comma-separated feature columns for drift (default: every other column)"
        )
        parser.add_argument("--categorical", help="comma-separated features whose numbers are codes, not quantities")
        parser.add_argument("--reference", help="reference CSV, Parquet or Arrow file, for drift")
        parser.add_argument("--alt-outcome", help="column with a direct measure of need, for the label-choice audit")
        parser.add_argument("--min-group-size", type=int, help="groups smaller than this are not judged")
        parser.add_argument("--policy", help="JSON policy file (see README: policies)")
        parser.add_argument("--format", choices=["json", "text"], default="json")

    def handle(self, *args: Any, **options: Any) -> None:
        import pyarrow.compute as pc

        from audits.engines.audit import audit_chunks, drift_column_types
        from audits.engines.identifiers import scan_identifiers
        from audits.engines.policy import Policy
        from audits.engines.roles_text import parse_protected, split_names
        from audits.engines.tables import (
            ColumnRoles,
            numeric_ranges,
            read_table,
            score_is_probability,
            validate_roles,
        )

        try:
            data = self._read(options["data"], read_table)
            protected = parse_protected(options["protected"])
            named = {
                options["label"],
                options["prediction"],
                options["score"],
                options["alt_outcome"],
                *(p["column"] for p in protected),
            }
            features = split_names(options["features"] or "") or [c for c in data.column_names if c not in named]
            roles = ColumnRoles.from_dict(
                {
                    "label": options["label"],
                    "prediction": options["prediction"],
                    "score": options["score"],
                    "protected": protected,
                    "features": features,
                    "categorical": split_names(options["categorical"] or ""),
                    "alternative_outcome": options["alt_outcome"],
                }
            )
            policy = Policy.from_json_file(options["policy"]) if options["policy"] else Policy()
            if options["min_group_size"] is not None:
                policy = Policy.from_dict({**policy.to_dict(), "min_group_size": options["min_group_size"]})
            validate_roles(data, roles)
            reference_chunks = reference_schema = ranges = None
            schema = [{"name": f.name, "dtype": str(f.type)} for f in data.schema]
            if options["reference"]:
                reference = self._read(options["reference"], read_table)
                shared = [c for c in roles.all_columns() if c in reference.column_names]
                reference_chunks = (batch.to_pandas() for batch in reference.select(shared).to_batches(100_000))
                reference_schema = [{"name": f.name, "dtype": str(f.type)} for f in reference.schema]
                numerical, _ = drift_column_types(roles, schema, reference_schema)
                ranges = numeric_ranges([data, reference], numerical)
            chunks = (batch.to_pandas() for batch in data.select(roles.all_columns()).to_batches(100_000))
            is_probability = True
            if roles.score:
                minimum, maximum = pc.min_max(data.column(roles.score)).values()
                is_probability = score_is_probability(minimum.as_py(), maximum.as_py())
            result, _ = audit_chunks(
                chunks,
                roles=roles,
                policy=policy,
                score_is_probability=is_probability,
                reference_chunks=reference_chunks,
                schema=schema,
                reference_schema=reference_schema,
                numeric_ranges=ranges,
                identifiers=scan_identifiers(data),
            )
        except TableError as exc:
            raise CommandError(str(exc)) from None
        if options["format"] == "json":
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self.stdout.write(render_text(result))

    @staticmethod
    def _read(path: str, read_table: Any) -> Any:
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"{path}: no such file")
        with file.open("rb") as stream:
            try:
                return read_table(stream, filename=file.name).table
            except TableError as exc:
                raise CommandError(f"{path}: {exc}") from None


def render_text(result: dict[str, Any]) -> str:
    """A plain-text summary of a result document, for reading in a terminal."""

    def fmt(value: Any) -> str:
        return "—" if value is None else f"{value:.3f}"

    lines = [f"Rows audited: {result['rows']}", f"Verdict: {result['verdict'].upper()}", ""]
    if result["findings"]:
        lines.append("Findings")
        lines += [f"  {f['severity']:<9}{f['message']}" for f in result["findings"]]
        lines.append("")
    lines.append("Fairness by group")
    lines.append(f"  {'attribute':<14}{'group':<22}{'n':>8}{'base':>8}{'select':>8}{'TPR':>8}{'FPR':>8}{'PPV':>8}")
    for g in result["fairness"]["groups"]:
        name = g["group"] + (" *" if g["is_reference"] else "")
        lines.append(
            f"  {g['attribute']:<14}{name:<22}{g['n']:>8}{fmt(g['base_rate']):>8}{fmt(g['selection_rate']):>8}"
            f"{fmt(g['true_positive_rate']):>8}{fmt(g['false_positive_rate']):>8}"
            f"{fmt(g['positive_predictive_value']):>8}"
        )
    lines += ["  (* reference group)", "", "Disparities against the reference group"]
    for d in result["fairness"]["disparities"]:
        interval = f"[{fmt(d['ci'][0])}, {fmt(d['ci'][1])}]" if d["ci"] else ""
        lines.append(
            f"  {d['attribute']:<14}{d['group']:<22}{d['metric']:<38}{fmt(d['value']):>8} {interval:<18}{d['status']}"
        )

    drift = result.get("drift")
    if drift:
        lines += [
            "",
            f"Drift: {drift['share_drifted']:.0%} of columns drifted; dataset drift: {drift['dataset_drift']}",
        ]
        for c in drift["columns"]:
            flag = "DRIFT" if c["drifted"] else "ok"
            lines.append(f"  {c['column']:<28}{c['stattest']:<32}{c['score']:>10.4f}{c['threshold']:>8.3f}  {flag}")
    quality = result["quality"]
    lines += ["", f"Data quality: {quality['duplicate_rows']} duplicate rows ({quality['duplicate_share']:.1%})"]
    for c in quality["columns"]:
        if c["missing"]:
            lines.append(f"  {c['column']:<28} missing {c['missing']} ({c['missing_share']:.1%})")
    return "\n".join(lines)
