"""What the file inputs' tests import: the app's file variable, ZIPs of a table and the invoices it names, and
hostile ZIPs."""

from __future__ import annotations

import zipfile
from pathlib import Path

from batches.choices import ExecutionStatus
from batches.dify.types import InputVariable
from batches.models import BatchFile, BatchTask, Execution
from batches.services import imports

DOC = InputVariable("doc", "Document", required=True, type="file")
NO_START = imports.ImportOptions(start=False)


def write_zip(path: Path, table: str, members: dict[str, bytes], name: str = "rows.csv") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, table)
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def invoice_zip(tmp_path: Path, rows: int = 50, distinct: int = 20) -> Path:
    table = "doc,text\n" + "".join(f"invoices/{i % distinct:02d}.pdf,row {i}\n" for i in range(rows))
    members = {f"invoices/{i:02d}.pdf": b"%PDF-1.4 invoice " + str(i).encode() * 100 for i in range(distinct)}
    return write_zip(tmp_path / "invoices.zip", table, members)


def assert_each_file_uploaded_once(stats: dict, batch: BatchTask, *, files: int, rows: int) -> None:
    """The fake saw each file uploaded once and every row called once, each row sending its file's upload id."""
    assert (stats["uploads"]["total"], stats["calls"]) == (files, rows)
    assert set(stats["uploads"]["by_name"].values()) == {1}
    upload_ids = dict(BatchFile.objects.filter(batch=batch).values_list("name", "upload_id"))
    for row in Execution.objects.filter(batch=batch):
        assert row.status == ExecutionStatus.SUCCEEDED
        assert row.outputs["echo"]["doc"]["upload_file_id"] == upload_ids[row.inputs["doc"]["file"]]


def left_on_disk(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*")] if folder.exists() else []


def outside(folder: Path, files_dir: Path) -> list[Path]:
    """Everything under `folder` but the files folder itself (which an import may create, empty)."""
    return sorted(path for path in folder.rglob("*") if path != files_dir)


def traversal_zip(path: Path) -> Path:
    return write_zip(path, "doc,text\nok.pdf,x\n", {"ok.pdf": b"x", "../evil.pdf": b"x"})


def absolute_zip(path: Path) -> Path:
    return write_zip(path, "doc,text\nok.pdf,x\n", {"ok.pdf": b"x", "/etc/evil.pdf": b"x"})


def link_zip(path: Path) -> Path:
    write_zip(path, "doc,text\nlink.pdf,x\n", {})
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo("link.pdf")
        info.external_attr = (0o120777 << 16) | 0x20
        archive.writestr(info, "/etc/passwd")
    return path


def many_entries_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("rows.csv", "doc,text\nf0,x\n")
        for i in range(100_000):
            archive.writestr(f"f{i}", b"")
    return path


def bomb_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("rows.csv", "doc,text\nbomb.pdf,x\n")
        with archive.open("bomb.pdf", "w", force_zip64=True) as member:
            zeros = bytes(1024 * 1024)
            for _ in range(300):
                member.write(zeros)
    return path


def missing_file_zip(path: Path) -> Path:
    return write_zip(path, "doc,text\na.pdf,x\nb.pdf,y\n", {"a.pdf": b"x"})
