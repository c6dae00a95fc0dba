from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Registry"
    default_auto_field = "django.db.models.BigAutoField"


class GovernanceAdminConfig(admin_apps.AdminConfig):
    """Django's admin with the service's site: members sign in, roles shape what they see (governance.admin_site)."""

    default = False
    default_site = "governance.admin_site.GovernanceAdminSite"
