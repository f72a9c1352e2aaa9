"""Settings for the batches project, read from the environment (see README)."""

import os
from pathlib import Path
from typing import Any

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG")
# Public, for development only: with DEBUG off, manage.py and the WSGI/ASGI entry points refuse to start on it
# (batchsite/startup.py). Importing the settings (tests, mypy) still works without a secret.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or DEV_SECRET_KEY
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "batches",
]
# The development tools (the fake Dify of the demo, tests and benchmarks: `manage.py fake_dify`); never in production.
BATCHES_DEV_TOOLS = DEBUG or env_bool("BATCHES_DEV_TOOLS")
if BATCHES_DEV_TOOLS:
    INSTALLED_APPS.append("fakedify")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Right after SecurityMiddleware: static files are answered before sessions or the database are touched.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "batches.middleware.ContentSecurityPolicyMiddleware",
    "batches.display.bidi.BidiEscapeMiddleware",  # U+202E and the like show escaped in every page
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "batchsite.urls"
WSGI_APPLICATION = "batchsite.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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


def database_config() -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE: a read transaction that later writes would otherwise fail at once with "database is locked".
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # Subprocess tests (qcluster, fake Dify) need a file they can open too.
        config["TEST"] = {"NAME": os.environ.get("BATCHES_TEST_SQLITE", str(BASE_DIR / "test-db.sqlite3"))}
    return config


DATABASES = {"default": database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/admin/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
# WhiteNoise serves STATIC_ROOT from the WSGI app (gunicorn alone serves the whole site): hashed names, so the
# files are cached for good, and compressed copies made by collectstatic. With DEBUG on, files come from the apps.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Load balancers probe /healthz over plain HTTP even when DJANGO_SECURE redirects everything else to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

if env_bool("DJANGO_SECURE"):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
# Only behind a proxy that sets X-Forwarded-Proto itself (and drops the client's): otherwise any client could claim
# HTTPS. Separate from DJANGO_SECURE on purpose.
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- batches engine -------------------------------------------------------------------------------------------
BATCHES_WORKERS = env_int("BATCHES_WORKERS", 2)
BATCHES_LEASE_SECONDS = env_float("BATCHES_LEASE_SECONDS", 30)
BATCHES_RUNNER_SLICE = env_float("BATCHES_RUNNER_SLICE", 300)
BATCHES_RUNNER_CAPACITY = env_int("BATCHES_RUNNER_CAPACITY", 500)
BATCHES_RUNNERS = env_int("BATCHES_RUNNERS", BATCHES_WORKERS)
# Names this machine in lease owners, to tell its own dead processes from another machine's live ones: set it
# per container when host names are not unique (empty: the host name).
BATCHES_NODE_NAME = os.environ.get("BATCHES_NODE_NAME", "")
BATCHES_POLL_INTERVAL = env_float("BATCHES_POLL_INTERVAL", 0.5)
BATCHES_MAX_INTERRUPTIONS = env_int("BATCHES_MAX_INTERRUPTIONS", 3)
BATCHES_BACKOFF_BASE = env_float("BATCHES_BACKOFF_BASE", 1.0)
BATCHES_BACKOFF_CAP = env_float("BATCHES_BACKOFF_CAP", 60.0)
BATCHES_MAX_REQUEST_TIMEOUT = env_float("BATCHES_MAX_REQUEST_TIMEOUT", 1200)
# Dify's APP_MAX_EXECUTION_TIME: it stops runs older than this, and they then say `running` for ever.
BATCHES_DIFY_MAX_EXECUTION_TIME = env_float("BATCHES_DIFY_MAX_EXECUTION_TIME", 1200)
BATCHES_MAX_UPLOAD_BYTES = env_int("BATCHES_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)
BATCHES_MAX_ROWS = env_int("BATCHES_MAX_ROWS", 1_000_000)
BATCHES_MAX_CELL_BYTES = env_int("BATCHES_MAX_CELL_BYTES", 1024 * 1024)  # one imported value (UTF-8 bytes)
# An XLSX file's declared unpacked size (zip bombs are refused from the archive's directory, before inflating).
BATCHES_MAX_XLSX_UNPACKED_BYTES = env_int("BATCHES_MAX_XLSX_UNPACKED_BYTES", 128 * 1024 * 1024)
# An XLSX file's shared strings (issue 27, M2): how many, and their characters in all (every one is held in memory).
BATCHES_MAX_XLSX_SHARED_STRINGS = env_int("BATCHES_MAX_XLSX_SHARED_STRINGS", 500_000)
BATCHES_MAX_XLSX_SHARED_CHARS = env_int("BATCHES_MAX_XLSX_SHARED_CHARS", 50_000_000)
BATCHES_MAX_RESPONSE_BYTES = env_int("BATCHES_MAX_RESPONSE_BYTES", 10 * 1024 * 1024)
# Downloads (exports, comparisons) one user may stream at once, and when a slot whose process died is forgotten.
BATCHES_MAX_EXPORTS_PER_USER = env_int("BATCHES_MAX_EXPORTS_PER_USER", 2)
BATCHES_EXPORT_SLOT_SECONDS = env_float("BATCHES_EXPORT_SLOT_SECONDS", 3600)
# File inputs (issue 15): the files of ZIP imports, kept on disk between import and upload.
BATCHES_FILES_DIR = Path(os.environ.get("BATCHES_FILES_DIR") or BASE_DIR / "data" / "files")
BATCHES_FILES_KEEP_DAYS = env_float("BATCHES_FILES_KEEP_DAYS", 7)
BATCHES_FILES_UNSTARTED_DAYS = env_float("BATCHES_FILES_UNSTARTED_DAYS", 7)  # a batch imported and never started
# Retention (issue 30): the minute sweep deletes batches that ended more than this many days ago (unset: never).
BATCHES_KEEP_DAYS = float(os.environ["BATCHES_KEEP_DAYS"]) if os.environ.get("BATCHES_KEEP_DAYS") else None
BATCHES_MAX_ZIP_BYTES = env_int("BATCHES_MAX_ZIP_BYTES", 2 * 1024 * 1024 * 1024)
BATCHES_MAX_ZIP_ENTRIES = env_int("BATCHES_MAX_ZIP_ENTRIES", 10_000)
BATCHES_MAX_ZIP_UNPACKED_BYTES = env_int("BATCHES_MAX_ZIP_UNPACKED_BYTES", 4 * 1024 * 1024 * 1024)
BATCHES_UPLOAD_REUSE_HOURS = env_float("BATCHES_UPLOAD_REUSE_HOURS", 24)
BATCHES_UPLOAD_RECHECK_MINUTES = env_float("BATCHES_UPLOAD_RECHECK_MINUTES", 60)
# What the target Dify checks of a file (batches/imports/file_types.py, issue 29), mirroring its own settings: the
# extensions its ETL takes as documents (Dify's default ETL; with ETL_TYPE=Unstructured add
# doc,eml,msg,pptx,xml,epub and ppt), its upload size limits per kind (MB) and its UPLOAD_FILE_EXTENSION_BLACKLIST.
BATCHES_DIFY_DOCUMENT_EXTENSIONS = env_list("BATCHES_DIFY_DOCUMENT_EXTENSIONS") or [
    *("txt", "markdown", "md", "mdx", "pdf", "html", "htm", "xlsx", "xls", "docx", "csv", "vtt", "properties")
]
BATCHES_DIFY_FILE_SIZE_LIMIT_MB = env_float("BATCHES_DIFY_FILE_SIZE_LIMIT_MB", 15)
BATCHES_DIFY_IMAGE_SIZE_LIMIT_MB = env_float("BATCHES_DIFY_IMAGE_SIZE_LIMIT_MB", 10)
BATCHES_DIFY_AUDIO_SIZE_LIMIT_MB = env_float("BATCHES_DIFY_AUDIO_SIZE_LIMIT_MB", 50)
BATCHES_DIFY_VIDEO_SIZE_LIMIT_MB = env_float("BATCHES_DIFY_VIDEO_SIZE_LIMIT_MB", 100)
BATCHES_DIFY_UPLOAD_EXTENSION_BLACKLIST = env_list("BATCHES_DIFY_UPLOAD_EXTENSION_BLACKLIST")
# On: the server fetches file URLs on private addresses (no SSRF proxy in front of it); off, such URLs are refused
# at import, as Dify's SSRF proxy would refuse them row by row.
BATCHES_DIFY_FETCHES_PRIVATE_URLS = env_bool("BATCHES_DIFY_FETCHES_PRIVATE_URLS")
# On: every batch of a workflow calls Dify as one `user` (workflow-<id>), so its uploads are reused across batches
# (a rerun on the same app uploads nothing again). Off: each batch is its own user and uploads its files again,
# as newer Dify requires (it looks an upload up by its uploader).
BATCHES_UPLOAD_SHARED_USER = env_bool("BATCHES_UPLOAD_SHARED_USER")
# The upstream circuit (batches/services/circuit.py): outage-class failures in a row that open it, the wait
# before the first probe and its cap (doubling in between), and minutes of outage after which a batch pauses (0:
# it waits for Dify as long as it takes).
BATCHES_CIRCUIT_FAILURES = env_int("BATCHES_CIRCUIT_FAILURES", 5)
BATCHES_CIRCUIT_PROBE_MIN = env_float("BATCHES_CIRCUIT_PROBE_MIN", 2.0)
BATCHES_CIRCUIT_PROBE_MAX = env_float("BATCHES_CIRCUIT_PROBE_MAX", 60.0)
BATCHES_OUTAGE_PAUSE_MINUTES = env_float("BATCHES_OUTAGE_PAUSE_MINUTES", 0)
# The health check (GET /parameters) a streak or an open circuit sends gives up after this many seconds (or the
# workflow's own timeout, if shorter). More than BATCHES_PARTIAL_OUTAGE_ROWS distinct rows failing outage-class in a
# row while it answers is a partial outage: the workflow's running batches pause (0: never).
BATCHES_CIRCUIT_PROBE_TIMEOUT = env_float("BATCHES_CIRCUIT_PROBE_TIMEOUT", 10.0)
BATCHES_PARTIAL_OUTAGE_ROWS = env_int("BATCHES_PARTIAL_OUTAGE_ROWS", 10)
# A batch whose first this many finished rows all failed with one error type pauses (0: never).
BATCHES_FAIL_FAST_ROWS = env_int("BATCHES_FAIL_FAST_ROWS", 50)
BATCHES_HTTP_TRANSPORT = os.environ.get("BATCHES_HTTP_TRANSPORT", "aiohttp")
# Fernet keys for the API keys stored in the database, newest first (see batches/db/crypto.py). Empty: derived from
# SECRET_KEY, fine for development; production should set its own (and keep it apart from SECRET_KEY).
BATCHES_ENCRYPTION_KEY = env_list("BATCHES_ENCRYPTION_KEY")
# Hosts a workflow's base URL may name: "api.dify.ai", "*.example.com" (any host under it). Empty: any host.
BATCHES_ALLOWED_UPSTREAM_HOSTS = env_list("BATCHES_ALLOWED_UPSTREAM_HOSTS")

# Notifications, audit and metrics (issue 31; README "Notifications, audit, metrics").
# The site's address, for the links in emails and webhooks (empty: links are paths only).
BATCHES_SITE_URL = os.environ.get("BATCHES_SITE_URL", "").rstrip("/")
# Minutes a running batch waits for Dify (its workflow's circuit not closed) before staff are told (0: never).
BATCHES_NOTIFY_WAITING_MINUTES = env_float("BATCHES_NOTIFY_WAITING_MINUTES", 15)
BATCHES_NOTIFY_BACKOFF_BASE = env_float("BATCHES_NOTIFY_BACKOFF_BASE", 30)  # seconds; doubles per failed try
BATCHES_NOTIFY_BACKOFF_CAP = env_float("BATCHES_NOTIFY_BACKOFF_CAP", 3600)
BATCHES_NOTIFY_MAX_TRIES = env_int("BATCHES_NOTIFY_MAX_TRIES", 30)  # then the message is given up (about a day)
BATCHES_NOTIFY_TIMEOUT = env_float("BATCHES_NOTIFY_TIMEOUT", 10)  # one webhook POST or SMTP exchange
# The currency of costs estimated from a workflow's price per 1,000 tokens (Dify names its own where it reports one).
BATCHES_PRICE_CURRENCY = os.environ.get("BATCHES_PRICE_CURRENCY", "USD")
# /metrics answers 404 unless this is set, and 403 without `Authorization: Bearer <token>`.
BATCHES_METRICS_TOKEN = os.environ.get("BATCHES_METRICS_TOKEN", "")
# And, when set, only from these addresses or CIDR ranges (the connecting address: a proxy's, behind one).
BATCHES_METRICS_ALLOWED_IPS = env_list("BATCHES_METRICS_ALLOWED_IPS")
# Email (Django's own settings): the console backend prints messages to the worker's stdout (the demo's choice).
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS")
EMAIL_TIMEOUT = int(BATCHES_NOTIFY_TIMEOUT)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "batches@localhost")

# A runner claims for its slice, then lets its calls finish: a call may first wait for the row's earlier run to end
# in Dify (batches/runner/reconcile.py, up to the timeout) and then run (up to the timeout again).
_task_timeout = int(BATCHES_RUNNER_SLICE + 2 * BATCHES_MAX_REQUEST_TIMEOUT + 60)
Q_CLUSTER = {
    "name": "batches",
    "orm": "default",
    "workers": BATCHES_WORKERS,
    # Messages are wake-ups: the truth (claims, leases) lives in our tables, so a lost or repeated one is harmless.
    "timeout": _task_timeout,
    "retry": _task_timeout + 60,
    "max_attempts": 2,
    "ack_failures": True,
    "save_limit": 200,
    "catch_up": False,
    "poll": env_float("BATCHES_Q_POLL", 0.2),
    "label": "Django Q2",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}},
    "loggers": {
        "batches": {"handlers": ["stderr"], "level": os.environ.get("BATCHES_LOG_LEVEL", "INFO"), "propagate": False},
        "fakedify": {"handlers": ["stderr"], "level": os.environ.get("BATCHES_LOG_LEVEL", "INFO"), "propagate": False},
        "django_q": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        # Django's default handlers print a 500's traceback only with DEBUG on (and mail it to ADMINS, unset here).
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "httpx": {"level": "WARNING"},
    },
}
