"""The fake Dify is a development app: installed with DJANGO_DEBUG or BATCHES_DEV_TOOLS on, absent otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fakedify.harness import PROJECT_ROOT


def fake_dify_help(**flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BATCHES_"))}
    env.update(DJANGO_SECRET_KEY="a-test-secret-key-for-the-dev-tools-check-0123456789", **flags)
    command = [sys.executable, "manage.py", "fake_dify", "--help"]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_production_settings_do_not_install_the_fake() -> None:
    done = fake_dify_help()

    assert done.returncode != 0
    assert "Unknown command: 'fake_dify'" in done.stderr


@pytest.mark.parametrize("flag", ["BATCHES_DEV_TOOLS", "DJANGO_DEBUG"])
def test_either_development_flag_installs_it(flag: str) -> None:
    done = fake_dify_help(**{flag: "1"})

    assert done.returncode == 0, done.stderr
    assert "--latency-ms" in done.stdout
