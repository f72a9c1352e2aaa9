"""bench/profile.py sorts sampled stacks into layers: each layer must be reachable by the code it names."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

PROFILE = Path(__file__).resolve().parents[2] / "bench" / "profile.py"


def profile(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(PROFILE.parent))  # as when run: its siblings import by name
    spec = importlib.util.spec_from_file_location("bench_profile", PROFILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("frame", "layer"),
    [
        ("send (/srv/app/batches/dify/client.py:120)", "Dify client (requests, stream parsing)"),
        ("events (/srv/app/batches/dify/sse.py:40)", "Dify client (requests, stream parsing)"),
        ("claim (/srv/app/batches/services/claims.py:88)", "runner and engine"),
    ],
)
def test_a_frame_of_the_dify_client_counts_in_its_own_layer(frame: str, layer: str, monkeypatch) -> None:
    assert profile(monkeypatch).layer_of(["main (/srv/app/manage.py:1)", frame]) == layer
