"""Settings from the environment: a clean `check --deploy` with DJANGO_SECURE, plain HTTP without it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fakedify.harness import PROJECT_ROOT

SECURE_ENV = {
    "DJANGO_SECURE": "1",
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
    "DJANGO_ALLOWED_HOSTS": "example.com",
    "BATCHES_ENCRYPTION_KEY": "k5tdLoIRw2jBuIDDOaBOo9NnAgDt6rhzjN3Y6dDN8fc=",
    "BATCHES_ALLOWED_UPSTREAM_HOSTS": "api.dify.ai",
}
SHOW_SETTINGS = """
import json, django
from django.conf import settings
from django.test import Client
from batches import conf
django.setup()
names = ["DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
         "SECURE_PROXY_SSL_HEADER",
         "BATCHES_ENCRYPTION_KEY", "BATCHES_ALLOWED_UPSTREAM_HOSTS"]
shown = {name: getattr(conf.settings if name.startswith("BATCHES_") else settings, name, None) for name in names}
shown["status"] = Client().get("/admin/login/").status_code
print(json.dumps(shown))
"""


def environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BATCHES_"))}
    return {**env, "DJANGO_SETTINGS_MODULE": "batchsite.settings", **overrides}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)


def shown_settings(**overrides: str) -> dict[str, Any]:
    done = run([sys.executable, "-c", SHOW_SETTINGS], environment(**overrides))
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_check_deploy_is_clean_with_django_secure(static_root: Path) -> None:
    done = run(
        [sys.executable, "manage.py", "check", "--deploy"],
        environment(**SECURE_ENV, DJANGO_STATIC_ROOT=str(static_root)),
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "System check identified no issues (0 silenced)."
    assert "WARNING" not in done.stderr


@pytest.mark.parametrize(
    "entry", [["manage.py", "check"], ["manage.py", "qcluster"], ["-c", "import batchsite.wsgi"],
              ["-c", "import batchsite.asgi"]],
)  # fmt: skip
@pytest.mark.parametrize("secret", [None, "dev-only-insecure-secret-key-change-me"])
def test_with_debug_off_nothing_starts_without_a_secret_key(entry: list[str], secret: str | None) -> None:
    env = {key: value for key, value in SECURE_ENV.items() if key != "DJANGO_SECRET_KEY"}
    if secret is not None:
        env["DJANGO_SECRET_KEY"] = secret

    done = run([sys.executable, *entry], environment(**env))

    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "DJANGO_SECRET_KEY" in done.stderr


def test_with_debug_on_the_development_secret_is_accepted() -> None:
    done = run([sys.executable, "manage.py", "check"], environment(DJANGO_DEBUG="1"))

    assert done.returncode == 0, done.stderr


def test_check_deploy_warns_while_the_encryption_key_and_upstream_hosts_are_unset(static_root: Path) -> None:
    env = {k: v for k, v in SECURE_ENV.items() if k not in ("BATCHES_ENCRYPTION_KEY", "BATCHES_ALLOWED_UPSTREAM_HOSTS")}
    env["DJANGO_STATIC_ROOT"] = str(static_root)

    done = run([sys.executable, "manage.py", "check", "--deploy"], environment(**env))

    assert done.returncode == 0, done.stderr
    assert "batches.W001" in done.stderr and "BATCHES_ENCRYPTION_KEY" in done.stderr
    assert "batches.W002" in done.stderr and "BATCHES_ALLOWED_UPSTREAM_HOSTS" in done.stderr


def test_with_django_secure_http_is_redirected_and_cookies_are_secure_only() -> None:
    shown = shown_settings(**{**SECURE_ENV, "DJANGO_ALLOWED_HOSTS": "testserver"})

    assert shown["SECURE_SSL_REDIRECT"] and shown["SESSION_COOKIE_SECURE"] and shown["CSRF_COOKIE_SECURE"]
    assert shown["SECURE_HSTS_SECONDS"] >= 31536000
    assert shown["status"] == 301


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """With DEBUG off pages link hashed static names, which need a collectstatic run (README "Production")."""
    root = tmp_path_factory.mktemp("static")
    env = environment(DJANGO_STATIC_ROOT=str(root), DJANGO_SECRET_KEY=SECURE_ENV["DJANGO_SECRET_KEY"])
    done = run([sys.executable, "manage.py", "collectstatic", "--noinput"], env)
    assert done.returncode == 0, done.stderr
    return root


def test_without_django_secure_plain_http_keeps_working_with_debug_off(static_root: Path) -> None:
    shown = shown_settings(DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="testserver", DJANGO_STATIC_ROOT=str(static_root))

    assert shown["DEBUG"] is False
    assert not shown["SECURE_SSL_REDIRECT"] and not shown["SESSION_COOKIE_SECURE"] and not shown["CSRF_COOKIE_SECURE"]
    assert not shown["SECURE_HSTS_SECONDS"]
    assert shown["status"] == 200


def test_list_settings_are_read_comma_separated() -> None:
    shown = shown_settings(
        BATCHES_ENCRYPTION_KEY=" k1, k2 ,", BATCHES_ALLOWED_UPSTREAM_HOSTS="api.dify.ai,*.corp.example"
    )

    assert shown["BATCHES_ENCRYPTION_KEY"] == ["k1", "k2"]
    assert shown["BATCHES_ALLOWED_UPSTREAM_HOSTS"] == ["api.dify.ai", "*.corp.example"]


def test_list_settings_default_to_empty() -> None:
    shown = shown_settings()

    assert shown["BATCHES_ENCRYPTION_KEY"] == shown["BATCHES_ALLOWED_UPSTREAM_HOSTS"] == []


def test_check_deploy_names_collectstatic_when_the_manifest_is_missing(tmp_path: Path) -> None:
    done = run(
        [sys.executable, "manage.py", "check", "--deploy"],
        environment(**SECURE_ENV, DJANGO_STATIC_ROOT=str(tmp_path / "never-collected")),
    )

    assert done.returncode == 1
    assert "batches.E001" in done.stderr and "collectstatic" in done.stderr


@pytest.mark.parametrize("entry", [["-c", "import batchsite.wsgi"], ["-c", "import batchsite.asgi"]])
def test_with_debug_off_a_web_process_refuses_to_start_without_collectstatic(entry: list[str], tmp_path: Path) -> None:
    done = run([sys.executable, *entry], environment(**SECURE_ENV, DJANGO_STATIC_ROOT=str(tmp_path / "empty")))

    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "collectstatic" in done.stderr


def test_with_debug_off_a_web_process_starts_after_collectstatic(static_root: Path) -> None:
    done = run(
        [sys.executable, "-c", "import batchsite.wsgi"], environment(**SECURE_ENV, DJANGO_STATIC_ROOT=str(static_root))
    )

    assert done.returncode == 0, done.stderr


def test_x_forwarded_proto_is_trusted_only_when_asked() -> None:
    env = {**SECURE_ENV, "DJANGO_ALLOWED_HOSTS": "testserver"}

    assert shown_settings(**env)["SECURE_PROXY_SSL_HEADER"] is None
    assert shown_settings(**env, DJANGO_TRUST_X_FORWARDED_PROTO="1")["SECURE_PROXY_SSL_HEADER"] == [
        "HTTP_X_FORWARDED_PROTO",
        "https",
    ]
