"""Roles shape the admin, per organization: members sign in without Django's staff flag, each sees only their
organization's objects, and what they may do there follows their role (viewer, auditor, model owner, approver,
admin). The services refuse too; these tests check that the pages do not offer, and refuse, what a role may not do."""

from __future__ import annotations

import pytest
from django.test import Client

from audits.models import AuditRun, Finding, FindingReview
from governance.models import GovernanceEvent, Membership, Role
from reports.services import report_generate_for_run
from tests.factories import AIModelFactory, MembershipFactory, ModelVersionFactory, UserFactory

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def actions_offered(client: Client, url: str) -> set[str]:
    page = client.get(url)
    assert page.status_code == 200
    if page.context["action_form"] is None:
        return set()
    return {value for value, _ in page.context["action_form"].fields["action"].choices if value}


def test_a_member_signs_in_without_the_staff_flag_and_a_stranger_cannot(team) -> None:
    assert not team.viewer.is_staff
    client = Client()
    page = client.post("/admin/login/?next=/admin/", {"username": "victor", "password": "correct horse battery staple"})
    assert page.status_code == 302 and page["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200

    UserFactory(username="nobody")
    page = Client().post("/admin/login/", {"username": "nobody", "password": "correct horse battery staple"})
    assert page.status_code == 200
    assert "belongs to no organization" in page.content.decode()


def test_a_viewer_reads_everything_of_their_organization_and_is_offered_no_change(team, finished_run) -> None:
    client = signed_in(team.viewer)
    ai_model = finished_run.model_version.ai_model
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    finding = finished_run.findings.first()
    assert finding is not None

    inventory = client.get("/admin/governance/aimodel/")
    assert inventory.status_code == 200 and ai_model.name in inventory.content.decode()
    assert not inventory.context["has_add_permission"]
    for page_of_a_writer in ("aimodel", "modelversion", "dataset"):
        assert client.get(f"/admin/governance/{page_of_a_writer}/add/").status_code == 403
    for page_of_a_writer in ("auditrun", "predictionbatch", "auditschedule"):
        assert client.get(f"/admin/audits/{page_of_a_writer}/add/").status_code == 403
    # The model's page opens read-only: no save button, and a POST is refused.
    detail = client.get(f"/admin/governance/aimodel/{ai_model.pk}/change/")
    assert detail.status_code == 200 and not detail.context["has_change_permission"]
    assert f">{finished_run.model_version.version}<" in detail.content.decode()  # its versions, listed below
    assert client.post(f"/admin/governance/aimodel/{ai_model.pk}/change/", {"name": "x"}).status_code == 403

    overview = client.get(f"/admin/governance/aimodel/{ai_model.pk}/overview/").content.decode()
    assert f"/admin/reports/report/{report.pk}/sign/" not in overview

    run_page = client.get(f"/admin/audits/auditrun/{finished_run.pk}/change/").content.decode()
    assert "Verdict:" in run_page
    # Evidently's interactive report opens from the run page for anyone who may read the run.
    assert f'href="/api/v1/audits/{finished_run.pk}/drift-report/"' in run_page
    drift_report = client.get(f"/api/v1/audits/{finished_run.pk}/drift-report/")
    assert drift_report.status_code == 200 and b"root_metric" in b"".join(drift_report)
    assert signed_in(team.outsider).get(f"/api/v1/audits/{finished_run.pk}/drift-report/").status_code == 404
    for offered in ("Run this audit again", "Generate a report", "/triage/", "/sign/"):
        assert offered not in run_page

    assert client.get(f"/admin/audits/finding/{finding.pk}/triage/").status_code == 403
    assert client.get(f"/admin/reports/report/{report.pk}/sign/").status_code == 403
    assert client.post(f"/admin/audits/auditrun/{finished_run.pk}/rerun/").status_code == 403
    assert client.post(f"/admin/audits/auditrun/{finished_run.pk}/report/").status_code == 403
    assert AuditRun.objects.count() == 1 and report.__class__.objects.count() == 1
    assert not FindingReview.objects.exists()
    # The HTI-1 page is shown with its fields disabled, and a POST is refused.
    hti1 = client.get(f"/admin/reports/sourceattribute/model/{ai_model.pk}/")
    assert hti1.status_code == 200 and "Record as reviewed" not in hti1.content.decode()
    assert client.post(f"/admin/reports/sourceattribute/model/{ai_model.pk}/", {}).status_code == 403
    # Lifecycle moves are not offered at all.
    assert actions_offered(client, "/admin/governance/modelversion/") == set()


def test_a_model_owner_triages_but_only_an_approver_accepts_a_risk_signs_or_approves(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    finding = finished_run.findings.first()
    assert finding is not None
    owner, approver = signed_in(team.owner), signed_in(team.approver)

    triage = owner.get(f"/admin/audits/finding/{finding.pk}/triage/")
    offered = {value for value, _ in triage.context["form"].fields["action"].choices}
    assert offered == {"acknowledge", "mitigate", "reopen"}
    refused = owner.post(
        f"/admin/audits/finding/{finding.pk}/triage/",
        {"action": "accept_risk", "justification": "The committee accepts this for the pilot ward"},
    )
    assert refused.status_code == 200 and not FindingReview.objects.exists()
    accepted = approver.post(
        f"/admin/audits/finding/{finding.pk}/triage/",
        {"action": "accept_risk", "justification": "The committee accepts this for the pilot ward"},
    )
    assert accepted.status_code == 302
    finding.refresh_from_db()
    assert finding.review_status == Finding.ReviewStatus.RISK_ACCEPTED

    assert owner.get(f"/admin/reports/report/{report.pk}/sign/").status_code == 403
    assert approver.get(f"/admin/reports/report/{report.pk}/sign/").status_code == 200
    assert "/sign/" in approver.get(f"/admin/audits/auditrun/{finished_run.pk}/change/").content.decode()

    assert actions_offered(owner, "/admin/governance/modelversion/") == {"start_audit", "move_to_validation"}
    assert actions_offered(approver, "/admin/governance/modelversion/") == {
        "start_audit",
        "move_to_validation",
        "move_to_approved",
        "move_to_deployed",
        "move_to_retired",
    }
    # Policies and schedules are the owner's to set; an auditor may audit but not change them.
    auditor = MembershipFactory(organization=team.organization, role=Role.AUDITOR).user
    assert signed_in(auditor).get("/admin/audits/auditschedule/add/").status_code == 403
    assert owner.get("/admin/audits/auditschedule/add/").status_code == 200


def test_an_outsider_finds_nothing_of_another_organization(team, finished_run) -> None:
    client = signed_in(team.outsider)
    ai_model = finished_run.model_version.ai_model
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    finding = finished_run.findings.first()
    assert finding is not None

    assert ai_model.name not in client.get("/admin/governance/aimodel/").content.decode()
    for url in (
        f"/admin/governance/aimodel/{ai_model.pk}/overview/",
        f"/admin/audits/auditrun/{finished_run.pk}/change/",
        f"/admin/audits/auditrun/{finished_run.pk}/progress/",
        f"/admin/audits/finding/{finding.pk}/triage/",
        f"/admin/reports/report/{report.pk}/sign/",
        f"/admin/reports/sourceattribute/model/{ai_model.pk}/",
    ):
        assert client.get(url).status_code == 404, url
    # Django's own change pages answer a missing object with a redirect and name nothing.
    page = client.get(f"/admin/governance/aimodel/{ai_model.pk}/change/", follow=True)
    assert ai_model.name not in page.content.decode()
    # The forms offer the outsider's own organization, models and people only.
    form = client.get("/admin/governance/modelversion/add/").context["adminform"].form
    assert list(form.fields["ai_model"].queryset) == []
    form = client.get("/admin/governance/aimodel/add/").context["adminform"].form
    assert list(form.fields["organization"].queryset) == [team.outsider_organization]
    assert list(form.fields["owner"].queryset) == [team.outsider]
    form = client.get("/admin/audits/auditrun/add/").context["form"]
    assert not form.fields["model_version"].queryset.exists() and not form.fields["dataset"].queryset.exists()
    form = client.get("/admin/governance/dataset/add/").context["form"]
    assert list(form.fields["organization"].queryset) == [team.outsider_organization]


def test_roles_are_per_organization(team, finished_run) -> None:
    # Ada approves at St Elsewhere and only reads at County General.
    MembershipFactory(organization=team.outsider_organization, role=Role.VIEWER, user=team.approver)
    other_version = ModelVersionFactory(ai_model=AIModelFactory(organization=team.outsider_organization))
    client = signed_in(team.approver)
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    assert client.get(f"/admin/reports/report/{report.pk}/sign/").status_code == 200
    form = client.get("/admin/governance/aimodel/add/").context["adminform"].form
    assert list(form.fields["organization"].queryset) == [team.organization]
    detail = client.get(f"/admin/governance/modelversion/{other_version.pk}/change/")
    assert detail.status_code == 200 and not detail.context["has_change_permission"]
    mine = client.get(f"/admin/governance/modelversion/{finished_run.model_version.pk}/change/")
    assert mine.context["has_change_permission"]


def _membership_formset(organization, rows, *, extra_user="", extra_role="viewer"):
    data = {
        "name": organization.name,
        "slug": organization.slug,
        "memberships-TOTAL_FORMS": str(len(rows) + 1),
        "memberships-INITIAL_FORMS": str(len(rows)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for i, (membership, role, delete) in enumerate(rows):
        data |= {
            f"memberships-{i}-id": str(membership.pk),
            f"memberships-{i}-organization": str(organization.pk),
            f"memberships-{i}-user": membership.user.username,
            f"memberships-{i}-role": role,
        }
        if delete:
            data[f"memberships-{i}-DELETE"] = "on"
    i = len(rows)
    # The blank row as a browser sends it: no user, the role select at its default.
    data |= {
        f"memberships-{i}-organization": str(organization.pk),
        f"memberships-{i}-user": extra_user,
        f"memberships-{i}-role": extra_role,
    }
    return data


def test_an_organization_admin_manages_its_members_and_keeps_one_admin(team) -> None:
    organization = team.organization
    admin_user = MembershipFactory(organization=organization, role=Role.ADMIN, user=UserFactory(username="adele")).user
    client = signed_in(admin_user)
    url = f"/admin/governance/organization/{organization.pk}/change/"
    rows = lambda: [(m, m.role, False) for m in Membership.objects.filter(organization=organization).order_by("pk")]  # noqa: E731

    # A new member is named by username; the change is recorded.
    UserFactory(username="nadia")
    page = client.post(url, _membership_formset(organization, rows(), extra_user="nadia", extra_role="auditor"))
    assert page.status_code == 302
    assert Membership.objects.get(user__username="nadia").role == "auditor"
    event = GovernanceEvent.objects.get(action="membership.set", after__user="nadia")
    assert event.actor == admin_user

    page = client.post(url, _membership_formset(organization, rows(), extra_user="no-such-person"))
    assert page.status_code == 200 and "No active account has that username" in page.content.decode()

    # The last admin can be neither demoted nor removed.
    current = rows()
    demoted = [(m, "viewer" if m.user == admin_user else r, d) for m, r, d in current]
    page = client.post(url, _membership_formset(organization, demoted), follow=True)
    assert "cannot change the role of the last admin of st-elsewhere" in page.content.decode()
    assert Membership.objects.get(user=admin_user).role == "admin"
    removed = [(m, r, m.user == admin_user) for m, r, d in current]
    page = client.post(url, _membership_formset(organization, removed), follow=True)
    assert "cannot remove the last admin of st-elsewhere" in page.content.decode()
    assert Membership.objects.filter(user=admin_user).exists()
    # Removing someone else is recorded with who they were.
    removed = [(m, r, m.user.username == "nadia") for m, r, d in rows()]
    page = client.post(url, _membership_formset(organization, removed))
    assert page.status_code == 302, [f.errors for f in page.context["inline_admin_formsets"][0].formset.forms]
    assert not Membership.objects.filter(user__username="nadia").exists()
    assert GovernanceEvent.objects.get(action="membership.removed").before == {"user": "nadia", "role": "auditor"}

    # Someone who is not an admin there sees the organization read-only.
    detail = signed_in(team.owner).get(url)
    assert detail.status_code == 200 and not detail.context["has_change_permission"]
    assert signed_in(team.owner).post(url, _membership_formset(organization, rows())).status_code == 403


def test_webhooks_and_other_peoples_tokens_are_for_admins(team) -> None:
    from governance.services import api_token_create
    from governance.webhooks import webhook_endpoint_create

    admin_user = MembershipFactory(organization=team.organization, role=Role.ADMIN).user
    webhook_endpoint_create(
        organization=team.organization, url="https://ci.example.org/hook", events=[], actor=admin_user
    )
    api_token_create(organization=team.organization, user=team.owner, name="owner-ci", scope="write", actor=team.owner)
    api_token_create(
        organization=team.organization, user=team.viewer, name="viewer-dash", scope="read", actor=team.viewer
    )
    owner = signed_in(team.owner)
    assert owner.get("/admin/governance/webhookendpoint/").status_code == 403
    tokens = owner.get("/admin/governance/apitoken/").content.decode()
    assert "owner-ci" in tokens and "viewer-dash" not in tokens
    admin_client = signed_in(admin_user)
    assert admin_client.get("/admin/governance/webhookendpoint/").status_code == 200
    tokens = admin_client.get("/admin/governance/apitoken/").content.decode()
    assert "owner-ci" in tokens and "viewer-dash" in tokens
