"""A ZIP upload: the table and the files its cells name, checked like every import before anything is written.

Refused with one line: over BATCHES_MAX_ZIP_BYTES; more than BATCHES_MAX_ZIP_ENTRIES entries (counted from the end
records and a walk of the central directory, bounded by its declared size, before zipfile parses it:
batches/imports/zip_directory.py); more than BATCHES_MAX_ZIP_UNPACKED_BYTES unpacked, or a large entry, or the whole
archive, compressed over MAX_RATIO times (a bomb; sizes are counted again while unpacking, never trusted); a path
that could leave a folder (`..`, absolute, a drive letter, a backslash); a link or a device; an encrypted entry; a
name twice; no table, or several, at the top level. A file is written under its number in a folder of our own,
never under its name from the ZIP, so nothing can land outside BATCHES_FILES_DIR whatever the names say.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from batches.conf import settings
from batches.imports import zip_directory
from batches.imports.files import FileInputError
from batches.imports.importers import EXTENSIONS, ImportFileError

MAX_RATIO = 200  # text compresses 5–20 times, a sparse sheet up to ~100; a bomb thousands of times
RATIO_FROM = 1024 * 1024  # a small entry, or a small archive, may compress as it likes
CHUNK = 1024 * 1024
MAX_MISSING_LISTED = 100
MAX_NAME = 1000  # BatchFile.name
JUNK = ("__MACOSX/",)
DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class TakenFile:
    stored: str  # relative to BATCHES_FILES_DIR; "" when only checked (the preview)
    size: int


@dataclass
class Archive:
    """An open, checked ZIP. `take(name)` checks a file the table names and, when importing, unpacks it once."""

    zip: zipfile.ZipFile
    entries: dict[str, zipfile.ZipInfo]  # the regular files, by name
    table: zipfile.ZipInfo
    folder: Path | None  # where taken files are written (None: check only)
    taken: dict[str, TakenFile] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # check only: names the ZIP lacks, listed by the preview

    def take(self, name: str) -> int | None:
        """The entry's size (None for a name the preview lists as missing)."""
        if name in self.taken:
            return self.taken[name].size
        if name in self.missing:
            return None
        info = self.entries.get(name)
        if (info is None or info is self.table) and self.folder is None and len(self.missing) < MAX_MISSING_LISTED:
            self.missing.append(name)
            return None
        if info is None or info is self.table:
            raise FileInputError(f"names {name!r}, which the ZIP does not hold")
        self.taken[name] = TakenFile(self._unpack(info) if self.folder is not None else "", info.file_size)
        return info.file_size

    def _unpack(self, info: zipfile.ZipInfo) -> str:
        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{len(self.taken) + 1:06d}"
        copy_entry(self.zip, info, target)
        return str(target.relative_to(settings.BATCHES_FILES_DIR))

    def extract_table(self, folder: Path) -> Path:
        """The table, unpacked into `folder` under its own base name (the importer reads its format from it)."""
        limit = settings.BATCHES_MAX_UPLOAD_BYTES  # the table keeps the limit of a table uploaded alone
        if self.table.file_size > limit:
            raise ImportFileError(f"the table {self.table.filename!r} unpacks to over the {size(limit)} limit")
        target = folder / PurePosixPath(self.table.filename).name
        copy_entry(self.zip, self.table, target)
        return target

    @property
    def table_name(self) -> str:
        return self.table.filename

    @property
    def file_count(self) -> int:
        return len(self.entries) - 1

    @property
    def taken_bytes(self) -> int:
        return sum(taken.size for taken in self.taken.values())


@contextlib.contextmanager
def open_archive(path: Path, folder: Path | None) -> Iterator[Archive]:
    """The checked archive (ImportFileError with one line if it is refused); closed on exit."""
    check_size(path)
    check_directory(path, settings.BATCHES_MAX_ZIP_ENTRIES)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ImportFileError(f"the file is not a readable ZIP archive ({exc})") from None
    with archive:
        entries = checked_entries(archive.infolist())
        yield Archive(archive, entries, find_table(entries), folder)


def check_size(path: Path) -> None:
    length, limit = path.stat().st_size, settings.BATCHES_MAX_ZIP_BYTES
    if length > limit:
        raise ImportFileError(f"the ZIP is {size(length)}, over the {size(limit)} limit")


def check_directory(path: Path, limit: int) -> None:
    """Bound the central directory from its end records, so a million forged records are refused unparsed."""
    with path.open("rb") as f:
        try:
            zip_directory.check(f, max_entries=limit)
        except zip_directory.ZipDirectoryError as exc:
            raise ImportFileError(str(exc)) from None


def checked_entries(infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    if len(infos) > settings.BATCHES_MAX_ZIP_ENTRIES:
        raise ImportFileError(f"the ZIP holds {len(infos):,} entries, more than {settings.BATCHES_MAX_ZIP_ENTRIES:,}")
    entries: dict[str, zipfile.ZipInfo] = {}
    total = compressed = 0
    for info in infos:
        check_entry(info)
        if info.is_dir() or info.filename.startswith(JUNK) or PurePosixPath(info.filename).name == ".DS_Store":
            continue
        if info.filename in entries:
            raise ImportFileError(f"the ZIP holds {info.filename!r} twice")
        entries[info.filename] = info
        total += info.file_size
        compressed += info.compress_size
    limit = settings.BATCHES_MAX_ZIP_UNPACKED_BYTES
    if total > limit:
        raise ImportFileError(f"the ZIP unpacks to {size(total)}, over the {size(limit)} limit")
    check_ratio(total, compressed)
    return entries


def check_ratio(total: int, compressed: int) -> None:
    """The whole archive's ratio, small entries included: 300 entries of 1 MiB of zeros each (a 339 KB ZIP) would
    otherwise write 301 MB to disk, each entry under the per-entry threshold."""
    if total > RATIO_FROM and total > MAX_RATIO * max(compressed, 1):
        raise ImportFileError(
            f"the ZIP unpacks to {size(total)} from {size(compressed)}: compressed "
            f"{total // max(compressed, 1):,} times (a ZIP bomb?)"
        )


def check_entry(info: zipfile.ZipInfo) -> None:
    name = info.filename
    if len(name) > MAX_NAME:
        raise ImportFileError(f"the ZIP entry {name[:60]!r}… has a name over {MAX_NAME} characters")
    if "\0" in name or "\\" in name or name.startswith("/") or DRIVE.match(name):
        raise ImportFileError(f"the ZIP entry {name!r} has an absolute or unsafe path")
    if ".." in PurePosixPath(name).parts:
        raise ImportFileError(f"the ZIP entry {name!r} points outside its folder ('..')")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode) or (stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))):
        raise ImportFileError(f"the ZIP entry {name!r} is a link or a device, not a file")
    if info.flag_bits & 0x1:
        raise ImportFileError(f"the ZIP entry {name!r} is encrypted")
    if info.file_size > RATIO_FROM and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise ImportFileError(
            f"the ZIP entry {name!r} is compressed {info.file_size // max(info.compress_size, 1):,} times (a ZIP bomb?)"
        )


def find_table(entries: dict[str, zipfile.ZipInfo]) -> zipfile.ZipInfo:
    tables = [
        info for name, info in entries.items() if "/" not in name and PurePosixPath(name).suffix.lower() in EXTENSIONS
    ]
    if not tables:
        raise ImportFileError("the ZIP holds no table (CSV, XLSX or JSONL) at its top level")
    if len(tables) > 1:
        names = ", ".join(repr(info.filename) for info in tables[:5])
        raise ImportFileError(
            f"the ZIP holds several tables at its top level ({names}): keep one, put files in folders"
        )
    return tables[0]


def copy_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Unpack one entry, counting its bytes: an entry that unpacks to more than it declares is refused."""
    written = 0
    try:
        with archive.open(info) as source, target.open("xb") as out:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise ImportFileError(f"the ZIP entry {info.filename!r} unpacks to more than it declares")
                out.write(chunk)
    except (zipfile.BadZipFile, NotImplementedError, EOFError, RuntimeError) as exc:
        target.unlink(missing_ok=True)
        raise ImportFileError(f"the ZIP entry {info.filename!r} cannot be unpacked ({exc})") from None
    except ImportFileError:
        target.unlink(missing_ok=True)
        raise


def size(count: int) -> str:
    return f"{count / 2**20:.1f} MB" if count >= 100 * 1024 else f"{count} bytes"


def remove_folder(folder: Path) -> None:
    """Remove an import's folder (only ever one under BATCHES_FILES_DIR)."""
    root = Path(settings.BATCHES_FILES_DIR).resolve()
    if folder.resolve().parent == root:
        shutil.rmtree(folder, ignore_errors=True)
