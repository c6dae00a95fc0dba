"""Governance events become an append-only hash chain per organization (2 of 3).

The events already recorded are chained in the order they were written.
"""

from django.conf import settings
from django.db import migrations


def chain_existing_events(apps, schema_editor):
    from governance.audit_trail import GENESIS, chain_of, event_hash

    Event = apps.get_model("governance", "GovernanceEvent")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    names = dict(User.objects.values_list("pk", "username"))
    heads: dict[int, tuple[int, str]] = {}
    for event in Event.objects.order_by("id").iterator():
        chain = chain_of(event.organization_id)
        sequence, previous = heads.get(chain, (0, GENESIS))
        event.chain, event.sequence, event.prev_hash = chain, sequence + 1, previous
        event.actor_name = (event.after or {}).get("by", "") if event.actor_id is None else names[event.actor_id]
        event.hash = event_hash(event)
        event.save(update_fields=["chain", "sequence", "prev_hash", "actor_name", "hash"])
        heads[chain] = (event.sequence, event.hash)


class Migration(migrations.Migration):
    dependencies = [("governance", "0006_event_hash_chain")]

    operations = [migrations.RunPython(chain_existing_events, migrations.RunPython.noop)]
