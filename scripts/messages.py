"""Extract, check and compile the Simplified Chinese catalog (batches/locale/zh_Hans).

    python scripts/messages.py            # update django.po from the code and templates, compile django.mo
    python scripts/messages.py --check    # exit 1, listing them, while any message is untranslated or fuzzy

Run from the project (or with --root, a copy of it). Needs GNU gettext (msgfmt, msgattrib). The project-wide
templates (templates/) are read through a link inside the app, so their strings land in the app's one catalog.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCALE = "zh_Hans"
PO = Path("locale") / LOCALE / "LC_MESSAGES" / "django.po"


def django_admin(app: Path, *args: str) -> None:
    # -P: the app folder is not on the path (its selectors.py would shadow the standard library's).
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    subprocess.run([sys.executable, "-P", "-m", "django", *args], cwd=app, env=env, check=True, capture_output=True)


def extract(root: Path) -> Path:
    app = root / "batches"
    link = app / "_project_templates"
    link.unlink(missing_ok=True)
    link.symlink_to(Path("..") / "templates")
    try:
        django_admin(app, "makemessages", "-l", LOCALE, "--symlinks", "--no-obsolete", "--ignore", "static/*")
    finally:
        link.unlink()
    return app / PO


def missing(po: Path) -> str:
    """The entries still untranslated or fuzzy, as msgattrib prints them (empty when the catalog is complete)."""
    stats = subprocess.run(["msgfmt", "--statistics", "-o", os.devnull, str(po)], capture_output=True, text=True)
    if stats.returncode == 0 and "untranslated" not in stats.stderr and "fuzzy" not in stats.stderr:
        return ""
    out = [stats.stdout + stats.stderr]
    for flag in ("--untranslated", "--only-fuzzy"):
        done = subprocess.run(["msgattrib", flag, "--no-wrap", str(po)], capture_output=True, text=True, check=True)
        out.append(done.stdout.split("\n\n", 1)[-1])  # without the catalog's header
    return "\n".join(out).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=ROOT, help="the project folder (default: this one)")
    parser.add_argument("--check", action="store_true", help="fail while a message lacks its translation")
    args = parser.parse_args()
    po = extract(args.root)
    if args.check:
        gaps = missing(po)
        if gaps:
            print(f"untranslated or fuzzy messages in {po}:\n{gaps}", file=sys.stderr)
            return 1
        return 0
    django_admin(args.root / "batches", "compilemessages", "-l", LOCALE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
