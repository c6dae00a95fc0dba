"""`governance-ci`: the fairness gate for a CI pipeline (HTTP through the standard library only).


    governance-ci gate --url https://governance.example.org --model 12 --version "$GIT_SHA" \
        --data eval.csv --roles roles.json [--reference-dataset 7] [--artifact-uri s3://...]

1. Registers the candidate version (a retry returns the same version).
2. Uploads its evaluation predictions with their column roles.
3. Starts an audit against the model's reference dataset (the newest of kind reference, unless
   --reference-dataset names one) and the model's policy.
4. Waits, printing progress, then prints the verdict: findings and the group-by-group comparison
   with the deployed version.
Every submission carries an Idempotency-Key derived from --run-id (default: the CI's pipeline id),
so a retried job never starts a second audit. Exit status: 0 pass, 1 fail, 2 error.
The token comes from $GOVERNANCE_TOKEN (a token of scope ci or write).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mimetypes
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


class GateError(Exception):
    """Something the pipeline's author must fix; the message says what."""


class Client:
    def __init__(self, url: str, token: str, run_id: str) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token
        self.run_id = run_id

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str = "application/json",
        idempotency: str | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        if idempotency:
            headers["Idempotency-Key"] = f"{self.run_id}:{idempotency}"
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 (the URL is the user's)
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            # A body that is not a JSON object is shown as it came.
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("detail", detail)
            raise GateError(f"{method} {path}: HTTP {error.code}: {detail}") from None
        except urllib.error.URLError as error:
            raise GateError(f"cannot reach {self.base}: {error.reason}") from None

    def post_json(self, path: str, data: dict[str, Any], *, idempotency: str | None = None) -> Any:
        return self.request("POST", path, body=json.dumps(data).encode(), idempotency=idempotency)

    def post_file(self, path: str, fields: dict[str, str], file: Path, *, idempotency: str) -> Any:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file.name}"\r\n'
            f"Content-Type: {kind}\r\n\r\n".encode()
            + file.read_bytes()
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        return self.request(
            "POST",
            path,
            body=b"".join(parts),
            content_type=f"multipart/form-data; boundary={boundary}",
            idempotency=idempotency,
        )


def gate(options: argparse.Namespace, out: Any = sys.stdout) -> int:
    """Run the gate flow; returns the exit status."""
    token = os.environ.get("GOVERNANCE_TOKEN", "")
    if not token:
        raise GateError("set GOVERNANCE_TOKEN to a token of scope ci or write")
    data, roles_file = Path(options.data), Path(options.roles)
    for path in (data, roles_file):
        if not path.is_file():
            raise GateError(f"{path}: no such file")
    try:
        roles = json.loads(roles_file.read_text())
    except ValueError as error:
        raise GateError(f"{roles_file} is not valid JSON: {error}") from None
    client = Client(options.url, token, options.run_id)
    model = client.request("GET", f"/models/{options.model}/")
    print(f"model {model['name']} ({model['organization']})", file=out)
    version = client.post_json(
        f"/models/{model['id']}/versions/",
        {"version": options.version, "artifact_uri": options.artifact_uri, "artifact_sha256": options.artifact_sha256},
        idempotency="version",
    )
    print(f"version {version['version']} (stage {version['stage']})", file=out)
    reference = options.reference_dataset
    if reference is None:
        found = client.request("GET", f"/datasets/?ai_model={model['id']}&kind=reference&limit=1")["results"]
        if not found:
            raise GateError("the model has no reference dataset; upload one or pass --reference-dataset")
        reference = found[0]["id"]
    dataset = client.post_file(
        "/datasets/",
        {
            "organization": model["organization"],
            "name": f"{model['slug']} {options.version} evaluation",
            "kind": "evaluation",
            "ai_model": str(model["id"]),
            "column_roles": json.dumps(roles),
        },
        data,
        idempotency="dataset",
    )
    print(f"uploaded {data.name}: {dataset['row_count']} rows, sha256 {dataset['sha256'][:12]}", file=out)
    run = client.post_json(
        "/audits/",
        {"model_version": version["id"], "dataset": dataset["id"], "reference_dataset": reference},
        idempotency="audit",
    )
    print(f"audit run {run['id']} queued", file=out)
    deadline = time.monotonic() + options.timeout
    last = ""
    while True:
        state = client.request("GET", f"/audits/{run['id']}/")
        progress = f"{state['status']}: {state['progress']}"
        if progress != last:
            print(f"  {progress}", file=out, flush=True)
            last = progress
        if state["status"] in ("succeeded", "failed"):
            break
        if time.monotonic() > deadline:
            raise GateError(f"audit run {run['id']} did not finish within {options.timeout} s")
        time.sleep(options.poll)
    verdict = client.request("GET", f"/audits/{run['id']}/verdict/")
    print(render(verdict), file=out)
    if verdict["overall"] == "error":
        raise GateError(f"the audit failed: {verdict.get('error')}")
    return EXIT_PASS if verdict["overall"] == "pass" else EXIT_FAIL


def render(verdict: dict[str, Any]) -> str:
    """The verdict as a table a pipeline log shows well."""
    lines = ["", f"VERDICT: {verdict['overall'].upper()}  (policy: {verdict['verdict']})"]
    if verdict["findings"]:
        lines.append(f"{'severity':<10}finding")
        lines += [f"{f['severity']:<10}{f['message']}" for f in verdict["findings"]]
    comparison = verdict.get("comparison") or {}
    if comparison.get("verdict") == "no_baseline":
        lines.append(f"comparison with the deployed version: none ({comparison['reason']})")
    elif comparison:
        worse = [r for r in comparison["groups"] if r["status"] == "worse"]
        lines.append(
            f"against deployed version {comparison['deployed_version']['version']}: "
            f"{len(worse)} group metric(s) worse beyond the margin"
        )
        if worse:
            lines.append(f"{'attribute':<14}{'group':<22}{'metric':<28}{'candidate':>10}{'deployed':>10}{'change':>9}")
            for r in worse:
                lines.append(
                    f"{r['attribute']:<14}{r['group']:<22}{r['metric']:<28}{r['candidate']:>10.3f}"
                    f"{r['deployed']:>10.3f}{r['change']:>+9.3f}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="governance-ci", description="The fairness gate for CI pipelines.")
    commands = parser.add_subparsers(dest="command", required=True)
    gate_parser = commands.add_parser("gate", help="register, upload, audit, wait, and exit 0 on pass, 1 on fail")
    gate_parser.add_argument(
        "--url", default=os.environ.get("GOVERNANCE_URL"), required="GOVERNANCE_URL" not in os.environ
    )
    gate_parser.add_argument("--model", required=True, help="the model's id")
    gate_parser.add_argument("--version", required=True, help="the candidate's version string (e.g. the commit)")
    gate_parser.add_argument("--data", required=True, help="evaluation predictions, CSV, Parquet or Arrow")
    gate_parser.add_argument("--roles", required=True, help="JSON file of column roles")
    gate_parser.add_argument("--reference-dataset", type=int, help="default: the model's newest reference dataset")
    gate_parser.add_argument("--artifact-uri", default="")
    gate_parser.add_argument("--artifact-sha256", default="")
    default_run = os.environ.get("GITHUB_RUN_ID") or os.environ.get("CI_PIPELINE_ID") or uuid.uuid4().hex
    gate_parser.add_argument("--run-id", default=default_run, help="makes retries idempotent (default: CI run id)")
    gate_parser.add_argument("--timeout", type=int, default=1800)
    gate_parser.add_argument("--poll", type=float, default=2.0)
    options = parser.parse_args(argv)
    try:
        return gate(options)
    except GateError as error:
        print(f"governance-ci: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
