"""The audit trail: every governance action is an event with who, the request and before/after; events are
append-only in the ORM, the admin and the database; each organization's events form a hash chain, and the
command and the endpoint that verify it name the first broken link."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from governance.audit_trail import GENESIS, chain_verify, event_hash
from governance.models import AppendOnlyError, GovernanceEvent
from governance.services import event_record
from tests.conftest import client_for, run_concurrently

pytestmark = pytest.mark.django_db


def _by_hand(event: GovernanceEvent) -> str:
    """The documented hash, computed here apart from the service: sha256 of sorted, compact JSON."""
    content = {
        "chain": event.organization_id or 0,
        "sequence": event.sequence,
        "prev_hash": event.prev_hash,
        "organization": event.organization_id,
        "actor": event.actor_id,
        "actor_name": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "created_at": event.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _tamper(sql: str, params: list) -> None:
    """What someone with the database owner's rights could do: switch the trigger off and write."""
    with connection.cursor() as cursor:
        # Deferred foreign-key checks of this test's own writes run first; ALTER TABLE waits for none.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE governance_governanceevent DISABLE TRIGGER governance_event_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE governance_governanceevent ENABLE TRIGGER governance_event_append_only")


def test_each_governance_action_is_recorded_with_who_the_request_and_what_changed(team, finished_run) -> None:
    owner = client_for(team.owner, team.organization)
    approver = client_for(team.approver, team.organization)
    version = finished_run.model_version
    finding = finished_run.findings.first()
    assert finding is not None

    def call(client, method, url, body, request_id):
        response = getattr(client, method)(url, body, format="json", headers={"X-Request-ID": request_id})
        assert response.status_code < 300, response.content
        return response.json()

    call(owner, "post", f"/api/v1/versions/{version.pk}/transition/", {"stage": "validation"}, "req-transition")
    call(owner, "patch", f"/api/v1/models/{version.ai_model_id}/policy/", {"min_group_size": 40}, "req-policy")
    call(owner, "post", f"/api/v1/findings/{finding.pk}/triage/", {"action": "acknowledge"}, "req-triage")
    report = call(owner, "post", f"/api/v1/audits/{finished_run.pk}/reports/", {}, "req-report")
    statement = {"statement": "Reviewed by the committee"}
    call(approver, "post", f"/api/v1/reports/{report['id']}/sign-offs/", statement, "req-sign")
    # Tokens are made by a person signed in, not by another token.
    signed_in = APIClient()
    signed_in.force_login(team.owner)
    body = {"organization": "st-elsewhere", "name": "ci", "scope": "ci"}
    token = call(signed_in, "post", "/api/v1/tokens/", body, "req-token")
    call(signed_in, "delete", f"/api/v1/tokens/{token['id']}/", {}, "req-revoke")

    expected = {
        "req-transition": ("model_version.stage_changed", "olivia", {"stage": "draft"}),
        "req-policy": ("audit_policy.changed", "olivia", None),
        "req-triage": ("finding.triaged", "olivia", None),
        "req-report": ("report.generated", "olivia", None),
        "req-sign": ("report.signed", "ada", None),
        "req-token": ("api_token.created", "olivia", None),
        "req-revoke": ("api_token.revoked", "olivia", None),
    }
    for request_id, (action, actor, before) in expected.items():
        event = GovernanceEvent.objects.get(request_id=request_id, action=action)
        assert event.actor_name == actor and event.organization == team.organization
        if before is not None:
            assert event.before == before
    policy = GovernanceEvent.objects.get(action="audit_policy.changed")
    assert policy.before["min_group_size"] == 30 and policy.after["min_group_size"] == 40
    # The upload and the run, recorded by the services the fixture called.
    actions = set(GovernanceEvent.objects.values_list("action", flat=True))
    assert {"dataset.uploaded", "audit_run.queued", "audit_run.succeeded"} <= actions


def test_the_chain_links_every_event_to_the_one_before(team, finished_run) -> None:
    events = list(GovernanceEvent.objects.filter(organization=team.organization).order_by("sequence"))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    for event in events:
        assert event.hash == _by_hand(event)
    report = chain_verify(team.organization.pk)
    assert (report.intact, report.events, report.head_hash) == (True, len(events), events[-1].hash)
    # Another organization's events form their own chain.
    other = event_record(
        organization=team.outsider_organization, actor=team.outsider, action="test.noted", obj=team.outsider
    )
    assert (other.sequence, other.prev_hash) == (1, GENESIS)


def test_events_cannot_be_changed_or_deleted_through_the_orm_or_the_database(team, finished_run) -> None:
    event = GovernanceEvent.objects.filter(organization=team.organization).first()
    assert event is not None
    event.action = "something.else"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        GovernanceEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(AppendOnlyError):
        GovernanceEvent.objects.filter(pk=event.pk).delete()
    for sql in (
        "UPDATE governance_governanceevent SET action = 'x' WHERE id = %s",
        "DELETE FROM governance_governanceevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert GovernanceEvent.objects.get(pk=event.pk).action != "x"
    # Nor through the admin, even for a superuser.
    team.owner.is_staff = team.owner.is_superuser = True
    team.owner.save()
    client = Client()
    client.force_login(team.owner)
    assert client.post(f"/admin/governance/governanceevent/{event.pk}/change/", {"action": "x"}).status_code == 403
    assert client.post(f"/admin/governance/governanceevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403


@pytest.mark.parametrize(
    ("tampering", "problem"),
    [
        ("altered", "its content does not match its hash"),
        ("altered and re-hashed", "its link does not match the previous event's hash"),
        ("removed", "an event is missing before it"),
    ],
)
def test_verification_names_the_first_broken_link(team, finished_run, tampering, problem) -> None:
    events = list(GovernanceEvent.objects.filter(organization=team.organization).order_by("sequence"))
    assert len(events) >= 4
    target = events[2]
    if tampering == "altered":
        _tamper("UPDATE governance_governanceevent SET after = '{\"n\": 1}' WHERE id = %s", [target.pk])
        broken = target
    elif tampering == "altered and re-hashed":
        # The forger recomputes the altered event's own hash: the next event's link still gives it away.
        _tamper("UPDATE governance_governanceevent SET after = '{\"n\": 1}' WHERE id = %s", [target.pk])
        forged = GovernanceEvent.objects.get(pk=target.pk)
        _tamper("UPDATE governance_governanceevent SET hash = %s WHERE id = %s", [event_hash(forged), target.pk])
        broken = events[3]
    else:
        _tamper("DELETE FROM governance_governanceevent WHERE id = %s", [target.pk])
        broken = events[3]
    intact_before = broken.sequence - 1 if tampering != "removed" else target.sequence - 1

    report = chain_verify(team.organization.pk)
    assert not report.intact and report.first_broken is not None
    assert report.first_broken["id"] == broken.pk and problem in report.first_broken["problem"]
    assert report.head_sequence == intact_before

    owner = client_for(team.owner, team.organization)
    answer = owner.get("/api/v1/events/verify/").json()
    assert answer["intact"] is False
    assert answer["organizations"][0]["first_broken"]["id"] == broken.pk
    with pytest.raises(CommandError, match="1 chain"):
        call_command("verify_events", "--organization", "st-elsewhere")


def test_the_verify_command_and_endpoint_report_an_intact_chain(team, finished_run, capsys) -> None:
    call_command("verify_events")
    out = capsys.readouterr().out
    count = GovernanceEvent.objects.filter(organization=team.organization).count()
    assert f"st-elsewhere: {count} events, intact" in out
    viewer = client_for(team.viewer, team.organization)  # records the token's creation: one event more
    answer = viewer.get("/api/v1/events/verify/").json()
    assert answer["intact"] is True and answer["organizations"][0]["events"] == count + 1
    # An outsider verifies and lists only their own organization's events.
    outsider = client_for(team.outsider, team.outsider_organization)
    assert [o["organization"] for o in outsider.get("/api/v1/events/verify/").json()["organizations"]] == [
        "county-general"
    ]
    listed = outsider.get("/api/v1/events/").json()["results"]
    assert all(e["organization"] == "county-general" for e in listed)
    mine = viewer.get("/api/v1/events/?action=audit_run.succeeded").json()
    assert [e["object_id"] for e in mine["results"]] == [str(finished_run.pk)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_extend_the_chain_one_after_another(team) -> None:
    def write() -> int:
        return event_record(organization=team.organization, actor=team.owner, action="test.noted", obj=team.owner).pk

    before = GovernanceEvent.objects.filter(organization=team.organization).count()
    written = run_concurrently(write, 12)
    assert len(written) == 12
    report = chain_verify(team.organization.pk)
    assert report.intact and report.events == before + 12
