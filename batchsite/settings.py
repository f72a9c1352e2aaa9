"""Settings for the batches project, read from the environment (see README)."""

import os
from pathlib import Path
from typing import Any

import dj_database_url

from batches.conf import BatchesSettings

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


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

# The app's own settings (BATCHES_*) live in batches/conf.py, read from the environment; one defined here (or in a
# deployment's settings module) overrides it. The email timeout, django-q2's workers, timeout and poll, and the log
# level below take their values from the environment (BatchesSettings): such an override does not reach them.

# Email (Django's own settings): the console backend prints messages to the worker's stdout (the demo's choice).
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS")
EMAIL_TIMEOUT = int(BatchesSettings.BATCHES_NOTIFY_TIMEOUT)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "batches@localhost")

# A runner claims for its slice, then lets its calls finish: a call may first wait for the row's earlier run to end
# in Dify (batches/runner/reconcile.py, up to the timeout) and then run (up to the timeout again).
_task_timeout = int(BatchesSettings.BATCHES_RUNNER_SLICE + 2 * BatchesSettings.BATCHES_MAX_REQUEST_TIMEOUT + 60)
Q_CLUSTER = {
    "name": "batches",
    "orm": "default",
    "workers": BatchesSettings.BATCHES_WORKERS,
    # Messages are wake-ups: the truth (claims, leases) lives in our tables, so a lost or repeated one is harmless.
    "timeout": _task_timeout,
    "retry": _task_timeout + 60,
    "max_attempts": 2,
    "ack_failures": True,
    "save_limit": 200,
    "catch_up": False,
    "poll": BatchesSettings.BATCHES_Q_POLL,
    "label": "Django Q2",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}},
    "loggers": {
        "batches": {"handlers": ["stderr"], "level": BatchesSettings.BATCHES_LOG_LEVEL, "propagate": False},
        "fakedify": {"handlers": ["stderr"], "level": BatchesSettings.BATCHES_LOG_LEVEL, "propagate": False},
        "django_q": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        # Django's default handlers print a 500's traceback only with DEBUG on (and mail it to ADMINS, unset here).
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "httpx": {"level": "WARNING"},
    },
}
