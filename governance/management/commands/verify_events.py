"""Verify the governance events' hash chains: `manage.py verify_events [--organization SLUG]`.

Prints each chain's length and head, or its first broken link; exits with 1 when any chain is broken.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.audit_trail import chain_of, chain_verify, chains
from governance.models import Organization


class Command(BaseCommand):
    help = "Verify the hash chains of the governance events and name the first broken link"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organization", help="slug of one organization (default: every chain)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["organization"]:
            organization = Organization.objects.filter(slug=options["organization"]).first()
            if organization is None:
                raise CommandError(f"no organization has the slug {options['organization']!r}")
            to_check = {chain_of(organization.pk): organization.slug}
        else:
            names = dict(Organization.objects.values_list("pk", "slug"))
            to_check = {chain: names.get(chain, "(no organization)") for chain in chains()}
        broken = 0
        for chain, name in to_check.items():
            report = chain_verify(chain)
            if report.intact:
                self.stdout.write(
                    f"{name}: {report.events} events, intact; head {report.head_sequence} {report.head_hash}"
                )
                continue
            broken += 1
            link = report.first_broken or {}
            self.stdout.write(
                f"{name}: BROKEN at event {link.get('id')} (sequence {link.get('sequence')}, {link.get('action')}, "
                f"{link.get('created_at')}): {link.get('problem')}; "
                f"the {report.head_sequence} events before it are intact"
            )
        if broken:
            raise CommandError(f"{broken} chain(s) broken")
