"""The governance events' hash chain: appending an event to its organization's chain, and verifying a chain.

Each organization's events form one chain (events of no organization form chain 0). An event's hash is the
sha256 of a canonical JSON of its content, which includes its place in the chain and the previous event's
hash. Changing an event changes its hash; removing one leaves a gap and a dangling link; inserting one
breaks the link of the event after it. `chain_verify` walks a chain in order and names the first event
where any of this shows.

Appending takes a per-chain lock (a PostgreSQL advisory lock held to the end of the transaction), so two
writers never both extend the chain from the same event; the unique (chain, sequence) constraint would
refuse the second anyway.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from governance.models import GovernanceEvent, Organization

GENESIS = "0" * 64
# The advisory-lock key of chain c is LOCK_BASE + c (one lock per organization's chain).
LOCK_BASE = 0x6F5E_0000_0000


def _normalised(value: Any) -> Any:
    """A JSON value as it reads back from the database: plain types, -0.0 as 0.0 (PostgreSQL has no -0)."""
    if isinstance(value, float):
        return value + 0.0
    if isinstance(value, dict):
        return {str(k): _normalised(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalised(v) for v in value]
    return value


def _json_value(value: Any) -> Any:
    return None if value is None else _normalised(json.loads(json.dumps(value)))


def event_content(event: GovernanceEvent) -> dict[str, Any]:
    """What an event's hash covers: every field but its own hash and its database id."""
    created_at = event.created_at.astimezone(UTC).isoformat(timespec="microseconds")
    return {
        "chain": event.chain,
        "sequence": event.sequence,
        "prev_hash": event.prev_hash,
        "organization": event.organization_id,
        "actor": event.actor_id,
        "actor_name": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before": _normalised(event.before),
        "after": _normalised(event.after),
        "request_id": event.request_id,
        "created_at": created_at,
    }


def event_hash(event: GovernanceEvent) -> str:
    canonical = json.dumps(event_content(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def chain_of(organization_id: int | None) -> int:
    return organization_id or 0


def event_append(
    *,
    organization: Organization | None,
    actor_id: int | None,
    actor_name: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    request_id: str,
) -> GovernanceEvent:
    """Append one event to its organization's chain (within the caller's transaction, if any)."""
    chain = chain_of(organization.pk if organization else None)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_BASE + chain])
        last = GovernanceEvent.objects.filter(chain=chain).order_by("-sequence").values("sequence", "hash").first()
        event = GovernanceEvent(
            organization=organization,
            actor_id=actor_id,
            actor_name=actor_name[:150],
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=_json_value(before),
            after=_json_value(after),
            request_id=request_id,
            created_at=timezone.now(),
            chain=chain,
            sequence=last["sequence"] + 1 if last else 1,
            prev_hash=last["hash"] if last else GENESIS,
        )
        event.hash = event_hash(event)
        event.save()
    return event


@dataclass(frozen=True)
class ChainReport:
    chain: int
    events: int
    intact: bool
    head_sequence: int
    head_hash: str
    first_broken: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "events": self.events,
            "intact": self.intact,
            "head": {"sequence": self.head_sequence, "hash": self.head_hash},
            "first_broken": self.first_broken,
        }


def chain_verify(chain: int) -> ChainReport:
    """Walk a chain in order; report the first event whose content, link or place is wrong."""
    previous_hash, expected_sequence, count = GENESIS, 1, 0
    events = GovernanceEvent.objects.filter(chain=chain).order_by("sequence").iterator(chunk_size=2000)
    for event in events:
        count += 1
        problem = None
        if event.sequence != expected_sequence:
            problem = f"sequence {event.sequence} follows {expected_sequence - 1}: an event is missing before it"
        elif event.prev_hash != previous_hash:
            problem = (
                "its link does not match the previous event's hash: the previous event was altered and re-hashed, "
                "or an event was removed or inserted before it"
            )
        elif event_hash(event) != event.hash:
            problem = "its content does not match its hash: it was altered after it was written"
        if problem is not None:
            broken = {
                "id": event.pk,
                "sequence": event.sequence,
                "action": event.action,
                "created_at": event.created_at.isoformat(),
                "problem": problem,
            }
            return ChainReport(chain, count, False, expected_sequence - 1, previous_hash, broken)
        previous_hash, expected_sequence = event.hash, expected_sequence + 1
    return ChainReport(chain, count, True, expected_sequence - 1, previous_hash, None)


def chains() -> list[int]:
    return sorted(set(GovernanceEvent.objects.values_list("chain", flat=True).distinct()))


def organization_verify(organization: Organization) -> dict[str, Any]:
    report = chain_verify(chain_of(organization.pk)).to_dict()
    return {"organization": organization.slug, **report, "verified_at": datetime.now(UTC).isoformat()}
