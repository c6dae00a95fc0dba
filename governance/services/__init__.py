"""Writes to the registry. Every governance action goes through here and leaves a GovernanceEvent."""

from governance.services.base import ServiceError, SystemActor, event_record, require_role
from governance.services.datasets import dataset_upload
from governance.services.registry import (
    AI_MODEL_FIELDS,
    ai_model_create,
    membership_remove,
    membership_set,
    model_version_create,
    model_version_register,
    model_version_transition,
    organization_create,
)
from governance.services.tokens import TOKEN_PREFIX, api_token_authenticate, api_token_create, api_token_revoke

__all__ = [
    "AI_MODEL_FIELDS",
    "TOKEN_PREFIX",
    "ServiceError",
    "SystemActor",
    "ai_model_create",
    "api_token_authenticate",
    "api_token_create",
    "api_token_revoke",
    "dataset_upload",
    "event_record",
    "membership_remove",
    "membership_set",
    "model_version_create",
    "model_version_register",
    "model_version_transition",
    "organization_create",
    "require_role",
]
