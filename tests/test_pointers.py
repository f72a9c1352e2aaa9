"""Every file the code, the tests, the benchmarks and the README point at exists: a moved module leaves no pointer
behind (issue 28, item 10)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["README.md", "Makefile", "docs/**/*.md", "batches/**/*.py", "bench/**/*.py", "tests/**/*.py", "scripts/*.py"]
POINTER = re.compile(
    r"(?<![\w/.-])((?:batches|tests|bench|fakedify|scripts|batchsite|deploy|docs|samples)/[\w/.-]*\w\.(?:py|md|html|json|service|toml))\b"
)
# Template names are looked up in the template folders; "shared/..." and Dify's own paths are outside this repository.
TEMPLATE_DIRS = [ROOT / "batches" / "templates", ROOT / "templates"]


@functools.cache
def pointers() -> list[tuple[str, str]]:
    found = []
    for pattern in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            if "recordings" in path.parts or ".venv" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            found += [(str(path.relative_to(ROOT)), match) for match in POINTER.findall(text)]
    return found


def exists(pointer: str) -> bool:
    if (ROOT / pointer).exists():
        return True
    return pointer.endswith(".html") and any((folder / pointer).exists() for folder in TEMPLATE_DIRS)


def test_the_pointers_are_found() -> None:
    assert len(pointers()) > 100


@pytest.mark.parametrize("source", sorted({source for source, _ in pointers()}))
def test_every_file_a_source_points_at_exists(source: str) -> None:
    missing = [pointer for where, pointer in pointers() if where == source and not exists(pointer)]

    assert missing == []
