"""The recordings the tests replay are the project's own copy of the shared sets of real Dify answers.

The copy lets a clone anywhere pass its tests; these checks fail when the copy and the shared set (beside the
project folder, where a checkout of the steering repository lays it) ever differ while both are present.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.replay import RECORDED

SHARED = Path(__file__).resolve().parents[3] / "shared"
COPIES = {"runs": "dify-real", "files": "dify-real-files"}


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.mark.parametrize("copy", sorted(COPIES))
def test_the_copy_of_the_recordings_is_in_the_repository(copy: str) -> None:
    cases = [name for name in contents(RECORDED / copy) if name.endswith(".json")]
    assert len(cases) >= 20 and "README.md" in contents(RECORDED / copy)


@pytest.mark.parametrize(("copy", "shared"), sorted(COPIES.items()))
def test_the_copy_equals_the_shared_set_while_both_are_present(copy: str, shared: str) -> None:
    if not (SHARED / shared).is_dir():
        pytest.skip(f"no ../shared/{shared} beside this clone")
    ours, theirs = contents(RECORDED / copy), contents(SHARED / shared)
    assert sorted(ours) == sorted(theirs), "files added or removed: copy ../shared again"
    assert [name for name in ours if ours[name] != theirs[name]] == [], "files changed: copy ../shared again"
