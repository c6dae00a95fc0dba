"""The registry's admin pages; the site itself, with its roles, is governance.admin_site."""

from governance.admin import access, datasets, registry

__all__ = ["access", "datasets", "registry"]
