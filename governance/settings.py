"""Settings, read from the environment only.

Every variable is documented in README.md. The helpers below fail loudly on a
value they cannot parse, so a typo in production stops the process at start-up
instead of silently falling back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str | None = None) -> str | None:
    """A string from NAME, or from the file named by NAME_FILE (for secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def envlist(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)

# The runtime state of the embedded default (SQLite file, broker folders, media) lives here.
VAR_DIR = Path(envstr("VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")

SECRET_KEY = envstr("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"  # noqa: S105

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # The service's templates (admin/base_site.html) come before the admin's own.
    "governance",
    "governance.apps.GovernanceAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "audits",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "governance.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "governance.middleware.RequestIdMiddleware",
]

ROOT_URLCONF = "governance.urls"
WSGI_APPLICATION = "governance.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# With no DATABASE_URL the service runs on a local SQLite file (the embedded default).
_sqlite_path = VAR_DIR / "governance.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL") or f"sqlite:///{_sqlite_path}",
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The web server, the worker and beat share the file: WAL lets readers run beside
    # the writer, IMMEDIATE transactions take the write lock up front instead of failing
    # on upgrade, and the timeout waits for a busy writer instead of raising at once.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(VAR_DIR / "static")) or VAR_DIR / "static")
# Whitenoise warns on every request if the folder is missing; collectstatic fills it in production.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(VAR_DIR / "media")) or VAR_DIR / "media")
MEDIA_URL = "media/"

STORAGES = {
    # Datasets and run artifacts go through this storage; an S3-compatible backend
    # (django-storages) is a configuration switch here.
    "default": {"BACKEND": envstr("FILE_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# S3-compatible object storage for datasets, batches and run artifacts: set S3_BUCKET (and S3_ENDPOINT_URL
# for a store other than AWS, e.g. MinIO); credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
# or the host's role, as boto3 finds them. Every web and worker process must see the same bucket.
S3_BUCKET = envstr("S3_BUCKET", "")
if S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": envstr("S3_ENDPOINT_URL", "") or None,
            "region_name": envstr("S3_REGION", "us-east-1"),
            "location": envstr("S3_PREFIX", ""),
            # Private objects, never overwritten (names are unique), read through signed URLs only.
            "default_acl": None,
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

# Uploads: larger files are streamed to a temporary file rather than held in memory.
DATASET_MAX_UPLOAD_BYTES = envint("DATASET_MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
DATASET_PARQUET_ROW_GROUP_SIZE = envint("DATASET_PARQUET_ROW_GROUP_SIZE", 100_000)
# Datasets are stored as Parquet partitions of at most this many rows, and about this many bytes in
# memory (a 50-feature row is about 400 bytes): the unit a worker reads, and an object in storage.
DATASET_PARTITION_ROWS = envint("DATASET_PARTITION_ROWS", 1_000_000)
DATASET_PARTITION_BYTES = envint("DATASET_PARTITION_BYTES", 512 * 1024 * 1024)

# Security. Production sets DEBUG=0 and SECURE_SSL_REDIRECT=1 (see README); the
# cookie and HSTS settings follow DEBUG unless set explicitly.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if envbool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# The cache holds short-lived counters (failed sign-in and token attempts). Production shares one Redis
# among its processes (CACHE_URL=redis://...); the embedded default keeps them in each process's memory.
CACHE_URL = envstr("CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
# Failed token or sign-in attempts from one client address: at most AUTH_FAILURE_LIMIT per
# AUTH_FAILURE_WINDOW_SECONDS, after which every attempt from it gets 429 until the window ends.
AUTH_FAILURE_LIMIT = envint("AUTH_FAILURE_LIMIT", 10)
AUTH_FAILURE_WINDOW_SECONDS = envint("AUTH_FAILURE_WINDOW_SECONDS", 60)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "governance.apis.exception_handler",
    # Proxies in front of the service whose X-Forwarded-For is trusted for the client's address (0: none).
    "NUM_PROXIES": envint("NUM_PROXIES", 0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Clinical AI governance API",
    "DESCRIPTION": "Register clinical models and their data, audit them for bias, drift and data quality, "
    "and read the results. Authenticate with `Authorization: Bearer <token>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page is served from the installed sidecar package, so it works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "AuditRunStatusEnum": "audits.models.AuditRun.Status",
        "AIModelStatusEnum": "governance.models.AIModel.Status",
        "DatasetKindEnum": "governance.models.Dataset.Kind",
        "PredictionBatchKindEnum": "audits.models.PredictionBatch.Kind",
        "AlertKindEnum": "audits.models.Alert.Kind",
    },
}

# Celery. With no broker configured, an embedded broker (kombu's filesystem transport
# in VAR_DIR) lets a real worker run audits asynchronously with no server installed.
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in ("queue", "processed"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
else:
    # Redis redelivers an unacknowledged task after this; it must outlast the longest audit.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 4 * 3600)}
# Run status is read from the database, never from a result backend.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
# Two queues: "audits" for the heavy audit runs, "celery" for the light tasks (sweeps, schedules, alerts,
# webhooks, monthly reports), so that a long audit never holds up the rest. A worker consumes one or both
# (`-Q audits`, `-Q celery`, `-Q audits,celery`); each takes one task at a time (prefetch 1).
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"audits.tasks.run_audit": {"queue": "audits"}, "audits.tasks.run_audit_task": {"queue": "audits"}}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A pool process that has grown past this (KiB) is replaced after its task: pandas and Arrow keep memory.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = envint("CELERY_WORKER_MAX_MEMORY_PER_CHILD", 4_000_000)
# The limits of an audit; the light tasks set shorter ones of their own.
CELERY_TASK_SOFT_TIME_LIMIT = envint("AUDIT_SOFT_TIME_LIMIT", 3 * 3600)
CELERY_TASK_TIME_LIMIT = envint("AUDIT_TIME_LIMIT", 3 * 3600 + 300)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "sweep-audit-runs": {"task": "audits.tasks.sweep_audit_runs", "schedule": 60.0},
    # The one beat entry for every AuditSchedule: it claims the due ones (no PeriodicTask per model).
    "fire-due-schedules": {"task": "audits.tasks.fire_due_schedules", "schedule": 60.0},
    # Last month's monitoring report of every deployed model, early on the first of the month (UTC).
    "monthly-monitoring-reports": {
        "task": "reports.tasks.generate_monthly_reports",
        "schedule": crontab(minute="30", hour="2", day_of_month="1"),
    },
}

# A worker holding a run renews its lease between phases; a run whose lease lapsed is
# handed back to the queue by the sweeper. A run queued this long without a claim is
# dispatched again (its message may have been lost).
AUDIT_RUN_LEASE_SECONDS = envint("AUDIT_RUN_LEASE_SECONDS", 15 * 60)
AUDIT_RUN_REDISPATCH_AFTER_SECONDS = envint("AUDIT_RUN_REDISPATCH_AFTER_SECONDS", 5 * 60)
# A run whose lease lapsed this many times (workers lost, database gone mid-run) fails instead of looping.
AUDIT_RUN_MAX_ATTEMPTS = envint("AUDIT_RUN_MAX_ATTEMPTS", 5)
# Evidently's interactive drift report holds whole columns in memory: above this many rows
# per dataset it is rendered from a seeded uniform sample (the verdicts never are).
AUDIT_EVIDENTLY_REPORT_ROWS = envint("AUDIT_EVIDENTLY_REPORT_ROWS", 100_000)
# A run over data in several partitions fans out: one task per partition, on any audit worker,
# then one merge (audits.services.partitions). Off, one worker reads every partition in turn.
AUDIT_FAN_OUT = envbool("AUDIT_FAN_OUT", True)
# A partition task that fails is tried again after AUDIT_TASK_RETRY_SECONDS; the run fails,
# naming the partition, once a task has been tried this many times (lost workers included).
AUDIT_TASK_MAX_TRIES = envint("AUDIT_TASK_MAX_TRIES", 3)
AUDIT_TASK_RETRY_SECONDS = envint("AUDIT_TASK_RETRY_SECONDS", 10)
# The queues partition tasks go to, partition i to queue i mod N (the merge to the first): one
# queue per host pins partitions to hosts, e.g. to measure how an audit spreads.
AUDIT_PARTITION_QUEUES = envlist("AUDIT_PARTITION_QUEUES", ["audits"])


# API tokens are stored as an HMAC keyed with this (defaults to SECRET_KEY).
API_TOKEN_HMAC_KEY = envstr("API_TOKEN_HMAC_KEY") or SECRET_KEY

LOG_LEVEL = envstr("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# SMTP, when EMAIL_BACKEND is django.core.mail.backends.smtp.EmailBackend (alerts are sent by e-mail).
EMAIL_HOST = envstr("EMAIL_HOST", "localhost") or "localhost"
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "") or ""
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "governance@localhost") or "governance@localhost"

# Published figures hide counts from 1 to this (CMS cell-size suppression).
REPORT_SMALL_CELL_THRESHOLD = envint("REPORT_SMALL_CELL_THRESHOLD", 10)

LOGIN_URL = "admin:login"
