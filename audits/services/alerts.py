"""Alerts: one per incident, told to the model's owners by e-mail and webhook when it opens, open until resolved."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audits.models import Alert, AuditRun
from governance.models import AIModel
from governance.services import event_record

logger = logging.getLogger(__name__)


def alert_raise(*, ai_model: AIModel, kind: str, incident_key: str, title: str, details: dict[str, Any]) -> Alert:
    """Open an alert for an incident, or count one more occurrence of the alert already open for it.

    1. If an alert for the incident is open, add to its occurrences and last_seen_at: no new notice.
    2. Otherwise open one (a partial unique index keeps two concurrent openings to one) and record the event;
       webhooks get `alert.opened`.
    3. Once the transaction commits, e-mail the model's owners.
    """
    alert, opened = _open_or_count(
        ai_model=ai_model, kind=kind, incident_key=incident_key, title=title, details=details
    )
    if opened:
        transaction.on_commit(lambda: alert_notify_dispatch(alert_ids=[alert.pk]))
    return alert


def _open_or_count(
    *, ai_model: AIModel, kind: str, incident_key: str, title: str, details: dict[str, Any]
) -> tuple[Alert, bool]:
    """The open alert of the incident, and whether this call opened it (else it counted one more occurrence)."""
    from governance.webhooks import webhook_event_emit

    now = timezone.now()
    open_alerts = Alert.objects.filter(ai_model=ai_model, incident_key=incident_key, resolved_at__isnull=True)
    if open_alerts.update(occurrences=F("occurrences") + 1, last_seen_at=now):
        return open_alerts.get(), False
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                organization_id=ai_model.organization_id,
                ai_model=ai_model,
                kind=kind,
                incident_key=incident_key[:300],
                title=title[:300],
                details=details,
                opened_at=now,
                last_seen_at=now,
            )
    except IntegrityError:
        # Opened by a concurrent transaction between our update and our insert: it is the same incident.
        open_alerts.update(occurrences=F("occurrences") + 1, last_seen_at=now)
        return open_alerts.get(), False
    event_record(
        organization=ai_model.organization,
        actor=None,
        action="alert.opened",
        obj=alert,
        after={"kind": kind, "incident_key": alert.incident_key, "title": alert.title},
    )
    webhook_event_emit(organization=ai_model.organization, event="alert.opened", payload=alert_payload(alert))
    return alert, True


def alert_resolve(*, alert: Alert, resolution: str, actor: Any = None) -> bool:
    """Close an open alert with why; a later occurrence of the incident opens a new one. False if already closed."""
    from governance.webhooks import webhook_event_emit

    closed = Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now(),
        resolution=resolution[:500],
        resolved_by=actor if getattr(actor, "pk", None) else None,
    )
    if not closed:
        return False
    alert.refresh_from_db()
    event_record(
        organization=alert.ai_model.organization,
        actor=actor,
        action="alert.resolved",
        obj=alert,
        after={"incident_key": alert.incident_key, "resolution": alert.resolution},
    )
    webhook_event_emit(organization=alert.ai_model.organization, event="alert.resolved", payload=alert_payload(alert))
    return True


def alerts_resolve_key(*, ai_model: AIModel, incident_key: str, resolution: str) -> bool:
    """Resolve the open alert of exactly this incident, if there is one."""
    alert = Alert.objects.filter(ai_model=ai_model, incident_key=incident_key, resolved_at__isnull=True).first()
    return alert is not None and alert_resolve(alert=alert, resolution=resolution)


def alerts_resolve_matching(*, ai_model: AIModel, prefix: str, keep: set[str], resolution: str) -> int:
    """Resolve the open alerts whose incident key starts with prefix (end it with ':'), except those in keep."""
    resolved = 0
    for alert in Alert.objects.filter(ai_model=ai_model, incident_key__startswith=prefix, resolved_at__isnull=True):
        if alert.incident_key not in keep and alert_resolve(alert=alert, resolution=resolution):
            resolved += 1
    return resolved


def alert_payload(alert: Alert) -> dict[str, Any]:
    """What a webhook or e-mail says of an alert: ids, names and figures, never patient data."""
    return {
        "alert": alert.pk,
        "kind": alert.kind,
        "model": alert.ai_model.slug,
        "title": alert.title,
        "incident_key": alert.incident_key,
        "opened_at": alert.opened_at.isoformat() if alert.opened_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "occurrences": alert.occurrences,
        "details": alert.details,
    }


def alert_recipients(ai_model: AIModel) -> list[str]:
    """The model's owner and the model's extra alert addresses."""
    addresses = [a.strip() for a in ai_model.alert_emails.split(",") if a.strip()]
    if ai_model.owner is not None and ai_model.owner.email:
        addresses.insert(0, ai_model.owner.email)
    return list(dict.fromkeys(addresses))


def alert_notify_dispatch(*, alert_ids: list[int]) -> None:
    """Send the e-mail of opened alerts of one model, as one message, from a worker (SMTP may be slow or down;
    the task retries)."""
    from kombu.exceptions import OperationalError

    from audits.tasks import notify_alerts

    try:
        notify_alerts.delay(alert_ids)
    except OperationalError:
        # Left for the sweeper, which sends notices of open alerts that no one was told of.
        logger.warning("alerts %s: broker unavailable, notice left for the sweeper", alert_ids)


def alert_notify(*, alert_ids: list[int]) -> int:
    """E-mail newly opened alerts of one model to its owners in one message; each alert is told once.

    Each alert is claimed first (its empty `notified` set to "sending"), so two deliveries of the task
    send it once; a failed send hands the claims back for the retry or the sweeper.
    """
    from django.conf import settings
    from django.core.mail import send_mail

    sending = {"sending_since": timezone.now().isoformat()}
    claimed = [pk for pk in alert_ids if Alert.objects.filter(pk=pk, notified={}).update(notified=sending)]
    if not claimed:
        return 0
    alerts = list(Alert.objects.filter(pk__in=claimed).select_related("ai_model__owner", "ai_model__organization"))
    ai_model = alerts[0].ai_model
    recipients = alert_recipients(ai_model)
    subject = alerts[0].title if len(alerts) == 1 else f"{len(alerts)} new alerts for {ai_model.name}"
    try:
        if recipients:
            send_mail(
                subject=f"[{ai_model.organization.slug}] {subject}"[:250],
                message="\n\n".join(_email_text(alert) for alert in alerts) + "\n\n" + NOTICE_FOOTER,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=recipients,
            )
    except Exception:
        # Hand the claims back so that the retry (or the sweeper) sends them.
        Alert.objects.filter(pk__in=claimed).update(notified={})
        raise
    Alert.objects.filter(pk__in=claimed).update(notified={"emails": recipients, "at": timezone.now().isoformat()})
    return len(claimed)


NOTICE_FOOTER = "You get one notice per incident: repeats are counted on the open alert until it is resolved."


def _email_text(alert: Alert) -> str:
    lines = [
        alert.title,
        "",
        f"Model: {alert.ai_model.name} ({alert.ai_model.slug})",
        f"Kind: {alert.get_kind_display()}",
        f"Opened: {alert.opened_at:%Y-%m-%d %H:%M} UTC",
    ]
    for name, value in alert.details.items():
        lines.append(f"{name.replace('_', ' ').capitalize()}: {value}")
    return "\n".join(lines)


def _finding_subject(finding: dict[str, Any]) -> str:
    """A finding in a few words for a title: the metric, where, and its value; the message has the rest."""
    metric = finding["metric"].replace("_", " ")
    where = f"{finding['attribute']} = {finding['group']}" if finding["group"] else finding["column"]
    value = finding["value"]
    return f"{metric}, {where}" + (f": {value:.3g}" if isinstance(value, int | float) else "")


def run_scope(run: AuditRun) -> str:
    """What makes runs the same source of incidents: the schedule that started them, else the version."""
    return f"schedule:{run.schedule_id}" if run.schedule_id else f"version:{run.model_version_id}"


def alerts_for_finished_run(run: AuditRun, result: dict[str, Any] | None) -> None:
    """Open or resolve the alerts a finished run bears on (called inside the run's finishing transaction).

    A failed run opens `run_failed` for its scope; a succeeded one resolves it. Each critical finding
    opens an alert keyed by scope, metric, attribute, group and column; a succeeded run resolves the
    critical alerts of its scope that it no longer finds.
    """
    ai_model = run.model_version.ai_model
    scope = run_scope(run)
    if result is None:
        alert_raise(
            ai_model=ai_model,
            kind=Alert.Kind.RUN_FAILED,
            incident_key=f"run_failed:{scope}",
            title=f"Audit of {run.model_version} failed",
            details={"run": run.pk, "error": run.error[:500], "scope": scope},
        )
        return
    alerts_resolve_key(ai_model=ai_model, incident_key=f"run_failed:{scope}", resolution=f"run {run.pk} succeeded")
    found: set[str] = set()
    opened: list[int] = []
    for finding in result.get("findings", []):
        if finding["severity"] != "critical":
            continue
        where = ":".join(str(finding[k] or "") for k in ("category", "metric", "attribute", "group", "column"))
        key = f"critical_finding:{scope}:{where}"
        found.add(key)
        alert, is_new = _open_or_count(
            ai_model=ai_model,
            kind=Alert.Kind.CRITICAL_FINDING,
            incident_key=key,
            title=f"Critical finding for {run.model_version}: {_finding_subject(finding)}"[:300],
            details={
                "message": finding["message"],
                "run": run.pk,
                "metric": finding["metric"],
                "attribute": finding["attribute"],
                "group": finding["group"],
                "column": finding["column"],
                "value": finding["value"],
            },
        )
        if is_new:
            opened.append(alert.pk)
    if opened:
        # One e-mail for the critical findings a run brought up, not one each.
        transaction.on_commit(lambda: alert_notify_dispatch(alert_ids=opened))
    alerts_resolve_matching(
        ai_model=ai_model,
        prefix=f"critical_finding:{scope}:",
        keep=found,
        resolution=f"not found again by run {run.pk}",
    )


def alerts_sweep_unnotified(*, older_than_seconds: int = 120) -> int:
    """Send again the notices of open alerts that no one was told of (the dispatch was lost, or sending died).

    Grouped by model, one message each, as when they opened.
    """
    stale = timezone.now() - timedelta(seconds=older_than_seconds)
    # A claim whose sender died mid-send (worker killed) is handed back after ten minutes.
    abandoned = timezone.now() - timedelta(minutes=10)
    for alert_id, notified in Alert.objects.filter(
        resolved_at__isnull=True, notified__has_key="sending_since"
    ).values_list("pk", "notified"):
        if datetime.fromisoformat(notified["sending_since"]) < abandoned:
            Alert.objects.filter(pk=alert_id, notified=notified).update(notified={})
    unsent = Alert.objects.filter(resolved_at__isnull=True, opened_at__lt=stale, notified={})
    by_model: dict[int, list[int]] = {}
    for alert_id, ai_model_id in unsent.values_list("pk", "ai_model_id"):
        by_model.setdefault(ai_model_id, []).append(alert_id)
    for alert_ids in by_model.values():
        alert_notify_dispatch(alert_ids=alert_ids)
    return sum(len(ids) for ids in by_model.values())
