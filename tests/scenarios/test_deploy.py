"""deploy/: the systemd units, gunicorn's configuration and the environment file example a deployment copies."""

from __future__ import annotations

import configparser
import re
import runpy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from batches.conf import BatchesSettings
from tests.processes import ROOT

DEPLOY = ROOT / "deploy"
UNITS = {"web": DEPLOY / "batches-web.service", "worker": DEPLOY / "batches-worker@.service"}
# Closing the HTTP client after the calls were handed back waits at most 5 + 10 + 10 s (call_loop.CallLoop.close).
RUNNER_HAND_BACK_SECONDS = 25
GUNICORN_GRACEFUL_TIMEOUT = 30


def service(unit: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNITS[unit].read_text())
    return parser["Service"]


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)\s*(s|min)?", value).groups()
    return float(number) * (60 if unit == "min" else 1)


@pytest.mark.parametrize("unit", ["web", "worker"])
def test_units_stop_the_main_process_only_and_always_restart(unit):
    section = service(unit)

    assert section["KillMode"] == "mixed"
    assert section.get("KillSignal", "SIGTERM") == "SIGTERM"
    assert section["Restart"] == "always"
    assert section["EnvironmentFile"] == "/etc/batches/batches.env"


@pytest.mark.parametrize("unit", ["web", "worker"])
def test_units_keep_the_files_they_write_from_other_users(unit):
    """Uploads, a ZIP import's files and exports hold the batches' data: not readable by every local user."""
    assert service(unit)["UMask"] == "0027"


def test_worker_unit_is_a_template_running_one_cluster_with_time_to_hand_rows_back():
    section = service("worker")

    assert UNITS["worker"].name.endswith("@.service")
    assert section["ExecStart"].endswith("manage.py qcluster")
    assert seconds(section["TimeoutStopSec"]) > 2 * RUNNER_HAND_BACK_SECONDS


def test_web_unit_runs_gunicorn_with_the_project_settings_and_outlasts_its_graceful_stop():
    section = service("web")

    assert section["ExecStart"].endswith("gunicorn -c deploy/gunicorn.conf.py batchsite.wsgi")
    assert seconds(section["TimeoutStopSec"]) > GUNICORN_GRACEFUL_TIMEOUT
    assert "graceful_timeout = 30" in (DEPLOY / "gunicorn.conf.py").read_text()


def test_environment_example_names_every_setting_a_deployment_must_set():
    names = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", (DEPLOY / "batches.env.example").read_text(), re.M))
    code = (ROOT / "batchsite" / "settings.py").read_text() + (DEPLOY / "gunicorn.conf.py").read_text()

    required = {"DJANGO_SECRET_KEY", "BATCHES_ENCRYPTION_KEY", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS", "DJANGO_SECURE"}
    assert required <= names
    # Every name it offers is one the code reads: the project's settings, gunicorn's (which reads WEB_CONCURRENCY
    # itself too), or one of the app's (batches/conf.py).
    unread = {name for name in names if f'"{name}"' not in code and not hasattr(BatchesSettings, name)}
    assert unread == set()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    for unit in UNITS.values():
        text = unit.read_text().replace("/etc/batches/batches.env", str(DEPLOY / "batches.env.example"))
        text = text.replace("/srv/batches/.venv", str(Path(ROOT / ".venv").resolve())).replace(
            "/srv/batches", str(ROOT)
        )
        (tmp_path / unit.name).write_text(text)
    (tmp_path / "batches-worker@1.service").symlink_to(tmp_path / "batches-worker@.service")

    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "batches-web.service", "batches-worker@1.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0 and done.stderr == "", done.stderr


def gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """The settings deploy/gunicorn.conf.py gives under `env` (gunicorn reads the module's globals)."""
    monkeypatch.delenv("DJANGO_TRUST_X_FORWARDED_PROTO", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = DEPLOY / "gunicorn.conf.py"
    return runpy.run_path(str(path))


@pytest.mark.parametrize(("trust", "headers"), [(None, {}), ("0", {}), ("1", {"X-FORWARDED-PROTO": "https"})])
def test_gunicorn_trusts_a_forwarded_scheme_only_when_asked(monkeypatch: pytest.MonkeyPatch, trust, headers) -> None:
    """gunicorn's default trusts X-Forwarded-Proto, -Ssl and -Protocol from 127.0.0.1 whatever Django is told."""
    env = {"DJANGO_TRUST_X_FORWARDED_PROTO": trust} if trust is not None else {}

    assert gunicorn_config(monkeypatch, **env)["secure_scheme_headers"] == headers
