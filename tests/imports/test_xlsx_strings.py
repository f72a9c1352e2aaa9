"""An XLSX file's shared strings are read within bounds (issue 27, M2): refused at once past them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from batches.imports.importers import ImportFileError, parse_file
from tests.xlsxfiles import shared_row, with_shared_strings

TINY = b"<si><t>a</t></si>"


def refusal(path: Path) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(ImportFileError) as caught:
        list(parse_file(path).rows)
    assert "\n" not in str(caught.value)
    return str(caught.value), time.monotonic() - started


def test_shared_strings_are_read_as_text_runs_included_and_phonetic_runs_left_out(tmp_path: Path) -> None:
    strings = [
        b"<si><t>text</t></si>",
        b"<si><r><rPr><b/></rPr><t>bold</t></r><r><t xml:space='preserve'> and plain</t></r></si>",
        b"<si><t>\xe6\x9d\xb1\xe4\xba\xac</t><rPh sb='0' eb='2'><t>toukyou</t></rPh></si>",
    ]
    path = with_shared_strings(tmp_path / "in.xlsx", strings, [shared_row(1, 0), shared_row(2, 1), shared_row(3, 2)])

    assert list(parse_file(path).rows) == [{"text": "bold and plain"}, {"text": "東京"}]


def test_more_shared_strings_than_the_setting_are_refused_at_once(tmp_path: Path, settings: Any) -> None:
    settings.BATCHES_MAX_XLSX_SHARED_STRINGS = 1000
    path = with_shared_strings(tmp_path / "in.xlsx", [TINY] * 100_000, [shared_row(1, 0), shared_row(2, 0)])

    message, seconds = refusal(path)

    assert message == "the workbook holds more than 1,000 shared strings"
    assert seconds < 1


def test_shared_strings_over_the_characters_setting_are_refused(tmp_path: Path, settings: Any) -> None:
    settings.BATCHES_MAX_XLSX_SHARED_CHARS = 10_000
    path = with_shared_strings(tmp_path / "in.xlsx", [b"<si><t>" + b"x" * 1000 + b"</t></si>"] * 11)

    assert refusal(path)[0] == "the workbook's shared strings hold more than 10,000 characters"


def test_a_small_file_of_two_million_shared_strings_is_refused_within_a_second_or_two(tmp_path: Path) -> None:
    """A 100 KB file (2 million strings, 34 MB of XML): openpyxl took half a minute and hundreds of MB."""
    path = with_shared_strings(tmp_path / "in.xlsx", [TINY * 1000] * 2000, [shared_row(1, 0), shared_row(2, 0)])
    assert path.stat().st_size < 200_000

    message, seconds = refusal(path)

    assert message == "the workbook holds more than 500,000 shared strings"
    assert seconds < 5  # about 0.5 s on an idle machine (bench/upload_worst.py)


def test_one_huge_shared_string_is_refused_before_it_is_read_whole(tmp_path: Path, settings: Any) -> None:
    settings.BATCHES_MAX_CELL_BYTES = 1000
    path = with_shared_strings(tmp_path / "in.xlsx", [b"<si><t>" + b"x" * (50 * 1024 * 1024) + b"</t></si>"])

    message, _ = refusal(path)

    assert message == "a shared string is longer than the 1000 bytes limit per cell"
