"""Compare the project's copy of the real Dify answers (tests/dify/recordings/) with the shared sets beside the
project folder, or copy them in again. Tests never read the shared folder: they replay the copy.

    python scripts/recordings.py           # exit 1 when the copy and the shared sets differ (0 without them)
    python scripts/recordings.py --update  # copy the shared sets into tests/dify/recordings/
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "dify" / "recordings"
SHARED = ROOT.parent / "shared"
COPIES = {"runs": "dify-real", "files": "dify-real-files"}


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def differences(copy: str, shared: str) -> list[str]:
    ours, theirs = contents(RECORDED / copy), contents(SHARED / shared)
    return sorted(name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="copy the shared sets into the repository")
    update = parser.parse_args().update
    found = 0
    for copy, shared in COPIES.items():
        if not (SHARED / shared).is_dir():
            print(f"no {SHARED / shared}: nothing to compare")
            continue
        if update:
            shutil.copytree(SHARED / shared, RECORDED / copy, dirs_exist_ok=True)
        changed = differences(copy, shared)
        found += len(changed)
        print(f"{copy}: {len(changed)} file(s) differ from {shared}" + (f": {', '.join(changed)}" if changed else ""))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
