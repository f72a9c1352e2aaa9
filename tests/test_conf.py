"""The app's settings (batches/conf.py): the environment sets their defaults, the Django settings win over them,
and README's tables say exactly what conf.py says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.test import override_settings

from batches import conf
from fakedify.harness import PROJECT_ROOT

SHOW_DEFAULTS = """
import json
from batches.conf import BatchesSettings as s
print(json.dumps([s.BATCHES_WORKERS, s.BATCHES_RUNNERS, s.BATCHES_LEASE_SECONDS, s.BATCHES_KEEP_DAYS,
                  str(s.BATCHES_FILES_DIR), s.BATCHES_DIFY_DOCUMENT_EXTENSIONS, s.BATCHES_ENCRYPTION_KEY,
                  s.BATCHES_UPLOAD_SHARED_USER, s.BATCHES_SITE_URL]))
"""


def defaults(**environ: str) -> list[Any]:
    """The defaults a fresh process reads from this environment (no BATCHES_* but these)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHES_")}
    done = subprocess.run(
        [sys.executable, "-c", SHOW_DEFAULTS], cwd=PROJECT_ROOT, env={**env, **environ}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_readme_shows_exactly_the_settings_of_conf_py() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()

    assert conf.readme_table() in readme, "run `make settings-table` (scripts/settings_table.py)"


def test_every_setting_is_documented_and_named_once() -> None:
    names = [item.name for _, items in conf.groups() for item in items]

    assert len(names) == len(set(names))
    assert all(name.startswith("BATCHES_") for name in names)
    assert all(item.doc and "\n" not in item.doc for _, items in conf.groups() for item in items)


def test_without_the_environment_each_setting_has_its_default() -> None:
    files_dir = str(PROJECT_ROOT / "data" / "files")

    shown = defaults()

    assert shown == [2, 2, 30.0, None, files_dir, conf.DIFY_DOCUMENT_EXTENSIONS, [], False, ""]


def test_the_environment_sets_the_defaults_parsed_as_before() -> None:
    shown = defaults(
        BATCHES_WORKERS="5",
        BATCHES_LEASE_SECONDS="7",
        BATCHES_KEEP_DAYS="3",
        BATCHES_FILES_DIR="/srv/files",
        BATCHES_DIFY_DOCUMENT_EXTENSIONS="pdf, txt,",
        BATCHES_ENCRYPTION_KEY=" k1, k2 ,",
        BATCHES_UPLOAD_SHARED_USER="Yes",
        BATCHES_SITE_URL="https://batches.example.com/",
    )

    assert shown == [5, 5, 7.0, 3.0, "/srv/files", ["pdf", "txt"], ["k1", "k2"], True, "https://batches.example.com"]


def test_an_empty_variable_means_the_default_where_it_did_before() -> None:
    shown = defaults(
        BATCHES_RUNNERS="3", BATCHES_KEEP_DAYS="", BATCHES_FILES_DIR="", BATCHES_DIFY_DOCUMENT_EXTENSIONS=","
    )

    assert shown[1:5] == [3, 30.0, None, str(PROJECT_ROOT / "data" / "files")]
    assert shown[5] == conf.DIFY_DOCUMENT_EXTENSIONS


def test_a_django_setting_wins_over_the_default(settings: Any) -> None:
    settings.BATCHES_MAX_ROWS = 7
    settings.BATCHES_KEEP_DAYS = None

    assert conf.settings.BATCHES_MAX_ROWS == 7
    assert conf.settings.BATCHES_KEEP_DAYS is None
    with override_settings(BATCHES_KEEP_DAYS=30):
        assert conf.settings.BATCHES_KEEP_DAYS == 30


def test_without_a_django_setting_the_default_is_read() -> None:
    assert conf.settings.BATCHES_MAX_ROWS == conf.BatchesSettings.BATCHES_MAX_ROWS
    assert isinstance(conf.settings.BATCHES_FILES_DIR, Path)
