"""The recordings the tests replay are the project's own copy of the real Dify answers: a clone anywhere has them.
`python scripts/recordings.py` compares the copy with the shared sets it was taken from (CI runs it); no test reads
them."""

from __future__ import annotations

import pytest

from tests.replay import RECORDED


@pytest.mark.parametrize("copy", ["runs", "files"])
def test_the_copy_of_the_recordings_is_in_the_repository(copy: str) -> None:
    names = {path.name for path in (RECORDED / copy).iterdir()}
    assert len([name for name in names if name.endswith(".json")]) >= 20 and "README.md" in names
