"""Worst cases of each upload format (CSV, JSONL, XLSX, ZIP) under its size limit: peak memory and time of reading
the upload as the preview and the import do (a ZIP's directory checked and its table unpacked, then every row read
and checked), each in a fresh process. The budget (issue 27): under 300 MB and 10 s.

    python bench/upload_worst.py [--only NAME] [--scale 1.0]

`--scale` shrinks the large files (0.1: a tenth of each size limit) for a quick look.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from common import ROOT, print_table

sys.path.insert(0, str(ROOT))
from tests.xlsxfiles import text_row, with_shared_strings, write_sheet  # noqa: E402
from tests.zipforge import forge, small_zip  # noqa: E402

MB = 1024 * 1024
READ = """
import resource, sys, time, django
def cpu(): usage = resource.getrusage(resource.RUSAGE_SELF); return usage.ru_utime + usage.ru_stime
def peak(): return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024
django.setup()
from pathlib import Path
from batches.imports.importers import ImportFileError, count_rows
from batches.services.file_imports import opened_table
before, started, used = peak(), time.monotonic(), cpu()
try:
    with opened_table(Path(sys.argv[1]), Path(sys.argv[1]).name) as table:
        outcome = f"{count_rows(table.path, filename=table.filename):,} rows"
except ImportFileError as exc:
    outcome = "refused: " + str(exc)[:70]
print(before, peak(), round(time.monotonic() - started, 2), round(cpu() - used, 2), outcome)
"""


def measure(path: Path) -> tuple[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "batchsite.settings", "DJANGO_SECRET_KEY": "bench"}
    done = subprocess.run([sys.executable, "-c", READ, str(path)], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    before, after, seconds, used, outcome = done.stdout.split(maxsplit=4)
    return f"peak {after} MB (start {before} MB), {seconds} s ({used} s CPU)", outcome.strip()


def write_lines(path: Path, head: str, line: str, count: int) -> Path:
    with path.open("w") as out:
        out.write(head)
        for _ in range(count):
            out.write(line)
    return path


def csv_rows(folder: Path, scale: float) -> Path:
    """200,000 rows (the row limit) of 500 bytes: 100 MB, the largest file a CSV may be."""
    cell = "x" * 480
    return write_lines(folder / "rows.csv", "text,lang\n", f"{cell},en\n", int(200_000 * scale))


def csv_huge_cell(folder: Path, scale: float) -> Path:
    path = folder / "cell.csv"
    path.write_text("text,lang\nsmall,en\n" + "x" * int(99 * MB * scale) + ",en\n")
    return path


def csv_quoted_cell(folder: Path, scale: float) -> Path:
    path = folder / "quoted.csv"
    path.write_text('text,lang\n"' + ("x" * 99 + "\n") * int(0.99 * MB * scale) + '",en\n')
    return path


def jsonl_rows(folder: Path, scale: float) -> Path:
    line = '{"text": "' + "x" * 480 + '", "lang": "en"}\n'
    return write_lines(folder / "rows.jsonl", "", line, int(200_000 * scale))


def jsonl_huge_line(folder: Path, scale: float) -> Path:
    path = folder / "line.jsonl"
    path.write_text('{"text": "small"}\n{"text": "' + "x" * int(99 * MB * scale) + '"}\n')
    return path


def xlsx_rows(folder: Path, scale: float) -> Path:
    rows = (text_row(n, f"row {n} " + "x" * 200, "en") for n in range(2, int(200_000 * scale) + 2))
    return write_sheet(folder / "rows.xlsx", [text_row(1, "text", "lang"), *rows])


def xlsx_shared_strings_bomb(folder: Path, scale: float) -> Path:
    """Two million tiny shared strings: about 100 KB on disk."""
    return with_shared_strings(folder / "strings.xlsx", [b"<si><t>a</t></si>" * 1000] * 2000)


def xlsx_long_strings(folder: Path, scale: float) -> Path:
    """49 strings of 1,000,000 characters (under the 50 million in all), each used by a row."""
    strings = [b"<si><t>" + b"x" * 1_000_000 + b"</t></si>"] * int(49 * scale)
    rows = [f'<row r="{n}"><c r="A{n}" t="s"><v>{n - 2}</v></c></row>'.encode() for n in range(2, len(strings) + 2)]
    return with_shared_strings(folder / "long.xlsx", strings, [text_row(1, "text"), *rows])


def xlsx_strings_at_the_bounds(folder: Path, scale: float) -> Path:
    """420,000 distinct strings of 100 Chinese characters (42 million): 121 MB unpacked, under the 128 MiB limit."""
    strings = ("<si><t>" + f"{n:06d}" + "中" * 94 + "</t></si>" for n in range(int(420_000 * scale)))
    rows = [text_row(1, "text"), b'<row r="2"><c r="A2" t="s"><v>0</v></c></row>']
    return with_shared_strings(folder / "bounds.xlsx", (item.encode() for item in strings), rows)


def xlsx_forged_directory(folder: Path, scale: float) -> Path:
    sheet = write_sheet(folder / "real.xlsx", [text_row(1, "text"), text_row(2, "a")])
    return forge(sheet, folder / "forged.xlsx", padding=int(1_000_000 * scale), count=5)


def xlsx_huge_cell(folder: Path, scale: float) -> Path:
    return write_sheet(folder / "cell.xlsx", [text_row(1, "text"), text_row(2, "x" * int(90 * MB * scale))])


def zip_forged_directory(folder: Path, scale: float) -> Path:
    """A million directory records (56 MB) behind an end record saying 2 entries."""
    real = small_zip(folder / "real.zip", {"rows.csv": b"text\nhello\n", "docs/a.pdf": b"%PDF"})
    return forge(real, folder / "forged.zip", padding=int(1_000_000 * scale), count=2)


def zip_forged_zip64(folder: Path, scale: float) -> Path:
    real = small_zip(folder / "real64.zip", {"rows.csv": b"text\nhello\n"})
    return forge(real, folder / "forged64.zip", count=1, zip64=(1, 2**40))


def zip_ratio_bomb(folder: Path, scale: float) -> Path:
    path = folder / "bombs.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("rows.csv", "doc\n" + "".join(f"f/{i}.pdf\n" for i in range(300)))
        for i in range(300):
            archive.writestr(f"f/{i}.pdf", bytes(MB))
    return path


def zip_many_entries(folder: Path, scale: float) -> Path:
    """10,000 entries (the limit) and a table of 200,000 rows of random text naming none of them."""
    lines = (f"{secrets.token_hex(240)},en\n" for _ in range(int(200_000 * scale)))
    table = ("text,lang\n" + "".join(lines)).encode()
    path = folder / "many.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rows.csv", table)
        for i in range(9_999):
            archive.writestr(f"files/{i}.txt", b"x")
    return path


def xlsx_wide_rows(folder: Path, scale: float) -> Path:
    """A sheet unpacking to about 121 MB (the limit is 128 MiB): 45,000 rows of 26 cells of 60 characters."""
    cells = ["y" * 60] * 26
    rows = (text_row(n, *cells) for n in range(2, int(45_000 * scale) + 2))
    return write_sheet(folder / "wide.xlsx", [text_row(1, *(chr(65 + i) for i in range(26))), *rows])


CASES: list[tuple[str, Callable[[Path, float], Path]]] = [
    ("CSV: 200,000 rows of 500 bytes (100 MB)", csv_rows),
    ("CSV: one 100 MB cell on one line", csv_huge_cell),
    ("CSV: one quoted 100 MB cell over a million lines", csv_quoted_cell),
    ("JSONL: 200,000 rows of 500 bytes", jsonl_rows),
    ("JSONL: one 100 MB line", jsonl_huge_line),
    ("XLSX: 200,000 rows", xlsx_rows),
    ("XLSX: 45,000 rows of 26 cells (a sheet of 121 MB)", xlsx_wide_rows),
    ("XLSX: 2 million shared strings (100 KB file)", xlsx_shared_strings_bomb),
    ("XLSX: 49 shared strings of a million characters", xlsx_long_strings),
    ("XLSX: 420,000 shared strings of 100 Chinese characters", xlsx_strings_at_the_bounds),
    ("XLSX: forged directory of a million records", xlsx_forged_directory),
    ("XLSX: one 90 MB inline cell", xlsx_huge_cell),
    ("ZIP: forged directory of a million records (56 MB)", zip_forged_directory),
    ("ZIP: ZIP64 end record declaring a 1 TB directory", zip_forged_zip64),
    ("ZIP: 300 entries of 1 MiB of zeros (339 KB)", zip_ratio_bomb),
    ("ZIP: 10,000 entries and a 200,000-row table", zip_many_entries),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    rows = []
    for name, build in CASES:
        if args.only.lower() not in name.lower():
            continue
        with tempfile.TemporaryDirectory(prefix="upload-worst-") as folder:
            path = build(Path(folder), args.scale)
            size = f"{path.stat().st_size / MB:.1f} MB" if path.stat().st_size >= 100 * 1024 else "<0.1 MB"
            figures, outcome = measure(path)
        rows.append((f"{name} [{size}]", f"{figures}: {outcome}"))
        print_table(rows[-1:])
        sys.stdout.flush()


if __name__ == "__main__":
    main()
