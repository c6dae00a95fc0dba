"""`make run`: migrate, start a worker and beat, load the demo, wait for its audit, serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from audits.models import AuditRun
from governance.demo import demo_admin, demo_members, demo_token, load_demo
from reports.models import Report
from reports.services import report_generate_for_run


def _die_with_parent() -> None:
    """In the child: ask Linux to send SIGTERM if rundemo dies without stopping it (e.g. SIGKILL)."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass  # Not Linux: Ctrl-C and SIGTERM still stop the children through the finally block.


def _refuse_taken_address(addr: str) -> None:
    """Fail before starting anything when the address to serve on is taken (another `make run`, say)."""
    import socket

    host, _, port = addr.rpartition(":")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As runserver binds: a port left in TIME_WAIT by a server that just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]") or "127.0.0.1", int(port)))
        except OSError:
            raise CommandError(
                f"{addr} is already in use: stop the other server, or serve elsewhere with DEMO_ADDR=127.0.0.1:8001"
            ) from None


class Command(BaseCommand):
    help = "Run the service with its demo: worker, beat and web server in one command."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--addr", default=os.environ.get("DEMO_ADDR", "127.0.0.1:8000"))
        parser.add_argument("--no-serve", action="store_true", help="stop after the demo audit (for scripts)")
        parser.add_argument("--timeout", type=int, default=900, help="seconds to wait for the demo audit")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_serve"]:
            _refuse_taken_address(options["addr"])
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        celery = [sys.executable, "-m", "celery", "-A", "governance"]
        # SIGTERM (e.g. from a process manager) ends the command like Ctrl-C, so the children are stopped.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        children = [
            # One worker process: with the embedded SQLite default, one writer at a time is what the file allows.
            subprocess.Popen(
                [
                    *celery,
                    "worker",
                    "-Q",
                    "audits,celery",
                    "--loglevel=INFO",
                    "--concurrency=1",
                    "-n",
                    "demo-worker@%h",
                ],
                preexec_fn=_die_with_parent,
            ),
            subprocess.Popen([*celery, "beat", "--loglevel=INFO"], preexec_fn=_die_with_parent),
        ]
        try:
            self._demo(options)
            if not options["no_serve"]:
                call_command("runserver", options["addr"], use_reloader=False)
        finally:
            for child in children:
                child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()

    def _demo(self, options: dict[str, Any]) -> None:
        user, password = demo_admin()
        self.stdout.write("Loading the demo (training the model on the reference period)...")
        demo = load_demo(actor=user)
        token = demo_token(organization=demo.organization, user=user)
        members = demo_members(organization=demo.organization, actor=user)
        run = demo.run
        self.stdout.write(f"Audit run {run.pk} queued; a Celery worker is running it...")
        deadline = time.monotonic() + options["timeout"]
        while True:
            run.refresh_from_db()
            if run.is_finished:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"the demo audit did not finish within {options['timeout']} s (status {run.status})")
            time.sleep(1)
        if run.status != AuditRun.Status.SUCCEEDED:
            raise CommandError(f"the demo audit failed: {run.error}")
        report = Report.objects.filter(audit_run=run).order_by("-version").first() or report_generate_for_run(
            run=run, actor=user
        )
        base = f"http://{options['addr']}"
        others = "".join(f"                {name} / {secret}   ({role})\n" for name, role, secret in members)
        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        self.stdout.write(
            self.style.SUCCESS(f"""
The demo is ready ({database} database, broker {settings.CELERY_BROKER_URL.split("://")[0]}).

  Admin:        {base}/admin/
  Login:        {user.get_username()} / {password}   (superuser)
{others}  Audit run:    {base}/admin/audits/auditrun/{run.pk}/change/
  Demo report:  {base}/reports/{report.pk}/   (sha256 {report.sha256})
  Monitoring:   {base}/admin/audits/auditschedule/   (a weekly audit of the production stream; its first
                run starts within a minute, then Mondays 06:00 New York time)
  API docs:     {base}/api/docs/
  API token:    {token}
  Try:          curl -H "Authorization: Bearer {token}" {base}/api/v1/audits/{run.pk}/
""")
        )
