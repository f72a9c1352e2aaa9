"""Peak memory of reading hostile and large XLSX files (each read in a fresh process).

    python bench/xlsx_memory.py [--empty-rows 1000000] [--data-rows 200000]

Cases: one million empty styled rows below one data row (2.5 MB on disk; issue 19 measured 578 MB with openpyxl's
own read-only reader), the same read by openpyxl's reader for comparison, and a sheet at the row limit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, print_table

sys.path.insert(0, str(ROOT))
from tests.xlsxfiles import styled_empty_rows, text_row, write_sheet  # noqa: E402

# VmHWM: ru_maxrss would carry this parent's peak over the exec.
PEAK = "def peak(): return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024"
READ_OURS = """
import sys, time, django
PEAK
django.setup()
from batches.imports.importers import ImportFileError, parse_file
started = time.monotonic()
try:
    outcome = f"{sum(1 for _ in parse_file(sys.argv[1]).rows)} rows"
except ImportFileError as exc:
    outcome = str(exc)[:60]
print(peak(), round(time.monotonic() - started, 2), outcome)
"""
READ_OPENPYXL = """
import sys, time
PEAK
from openpyxl import load_workbook
started = time.monotonic()
sheet = load_workbook(sys.argv[1], read_only=True, data_only=True).worksheets[0]
sheet.reset_dimensions()
rows = sum(1 for _ in sheet.iter_rows(values_only=True))
print(peak(), round(time.monotonic() - started, 2), f"{rows} rows")
"""


def measure(code: str, path: Path) -> list[str]:
    code = code.replace("PEAK", PEAK)
    env = {"DJANGO_SETTINGS_MODULE": "batchsite.settings", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    peak, seconds, outcome = done.stdout.split(maxsplit=2)
    return [f"{int(peak)} MB", f"{seconds} s", outcome.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--empty-rows", type=int, default=1_000_000)
    parser.add_argument("--data-rows", type=int, default=200_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="xlsx-memory-"))
    styled = write_sheet(
        folder / "styled.xlsx", [text_row(1, "text"), text_row(2, "a"), *styled_empty_rows(3, args.empty_rows)]
    )
    data = write_sheet(
        folder / "data.xlsx",
        [text_row(1, "text", "lang"), *(text_row(n, f"row {n} text", "en") for n in range(2, args.data_rows + 2))],
    )
    size = lambda path: f"{path.stat().st_size / 1024 / 1024:.1f} MB"  # noqa: E731
    rows = [
        [f"{args.empty_rows:,} empty styled rows ({size(styled)})", "batches", *measure(READ_OURS, styled)],
        [
            f"{args.empty_rows:,} empty styled rows ({size(styled)})",
            "openpyxl read-only",
            *measure(READ_OPENPYXL, styled),
        ],
        [f"{args.data_rows:,} data rows ({size(data)})", "batches", *measure(READ_OURS, data)],
        [f"{args.data_rows:,} data rows ({size(data)})", "openpyxl read-only", *measure(READ_OPENPYXL, data)],
    ]
    print_table(
        [(f"{file}, {reader}", f"peak {peak}, {seconds}: {outcome}") for file, reader, peak, seconds, outcome in rows]
    )


if __name__ == "__main__":
    main()
