"""Write README's tables of the app's settings from batches/conf.py (tests/test_conf.py fails while they differ)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batches import conf  # noqa: E402  (the project is not installed: its root goes on the path first)

README = ROOT / "README.md"


def main() -> None:
    text = README.read_text()
    start, end = text.index(conf.TABLE_START), text.index(conf.TABLE_END) + len(conf.TABLE_END)
    README.write_text(text[:start] + conf.readme_table() + text[end:])


if __name__ == "__main__":
    main()
