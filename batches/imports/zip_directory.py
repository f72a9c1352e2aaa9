"""Bound a ZIP's central directory before Python's zipfile reads it (ZIP uploads and XLSX files alike).

zipfile reads the whole directory the end record declares, then builds an object per record until it has read
that many bytes, whatever the entry count says: a forged count let a 56 MB directory of a million records cost
8 s and 551 MB before any check could count them. Here the end record (and the ZIP64 one, found exactly where
zipfile looks for it) gives the directory's size and place; a directory over `max_entries` × BYTES_PER_ENTRY is
refused from those numbers alone, and a smaller one is walked record by record, without decoding anything, and
refused at its (max_entries + 1)-th record. Only then does zipfile parse it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO

END = struct.Struct("<4s4H2LH")  # the end of central directory record
END_SIGNATURE = b"PK\x05\x06"
LOCATOR = struct.Struct("<4sLQL")  # the ZIP64 end of central directory locator
LOCATOR_SIGNATURE = b"PK\x06\x07"
END64 = struct.Struct("<4sQ2H2L4Q")  # the ZIP64 end of central directory record
END64_SIGNATURE = b"PK\x06\x06"
RECORD = struct.Struct("<4s4B4HL2L5H2L")  # a central directory record's fixed part
RECORD_SIGNATURE = b"PK\x01\x02"
MAX_COMMENT = 65535
BYTES_PER_ENTRY = 2048  # a record is 46 bytes, its name, extra fields and comment; real ones use 100–300


class ZipDirectoryError(ValueError):
    """The directory is refused; str(error) is one line."""


class DamagedZip(ZipDirectoryError):
    """Not a ZIP zipfile could read at all (no end record, a damaged or truncated directory)."""


@dataclass(frozen=True)
class Directory:
    entries: int  # as the end record declares (ZIP64's when present)
    size: int
    start: int  # where zipfile reads it from


def check(f: IO[bytes], *, max_entries: int, what: str = "ZIP") -> int:
    """The number of records in the directory, once it is known to hold at most `max_entries` of them."""
    directory = locate(f)
    if directory.entries > max_entries:
        raise ZipDirectoryError(f"the {what} holds {directory.entries:,} entries, more than {max_entries:,}")
    bound = max_entries * BYTES_PER_ENTRY
    if directory.size > bound:
        raise ZipDirectoryError(
            f"the {what}'s directory is {directory.size:,} bytes, over the {bound:,} bytes "
            f"{max_entries:,} entries may take"
        )
    if directory.start < 0:
        raise DamagedZip(f"the file is not a readable {what} archive (a directory before its start)")
    f.seek(directory.start)
    data = f.read(directory.size)
    if len(data) != directory.size:
        raise DamagedZip(f"the file is not a readable {what} archive (a truncated directory)")
    return _count_records(data, max_entries, what)


def locate(f: IO[bytes]) -> Directory:
    """The directory the end records declare, read as zipfile reads them (the ZIP64 record right before its
    locator, right before the end record)."""
    f.seek(0, 2)
    length = f.tell()
    f.seek(max(0, length - END.size - MAX_COMMENT))
    tail = f.read()
    at = tail.rfind(END_SIGNATURE)
    if at < 0 or len(tail) < at + END.size:
        raise DamagedZip("the file is not a readable ZIP archive (no end record)")
    end_at = length - len(tail) + at
    fields = END.unpack_from(tail, at)
    entries, size = fields[4], fields[5]  # its offset field is not what zipfile reads from
    found = _end64(f, end_at)
    if found is None:
        return Directory(entries, size, end_at - size)
    entries, size = found
    return Directory(entries, size, end_at - size - LOCATOR.size - END64.size)


def _end64(f: IO[bytes], end_at: int) -> tuple[int, int] | None:
    """(entries, directory size) from the ZIP64 end record, if the archive has one where zipfile looks."""
    if end_at < LOCATOR.size + END64.size:
        return None
    f.seek(end_at - LOCATOR.size)
    if LOCATOR.unpack(f.read(LOCATOR.size))[0] != LOCATOR_SIGNATURE:
        return None
    f.seek(end_at - LOCATOR.size - END64.size)
    fields = END64.unpack(f.read(END64.size))
    if fields[0] != END64_SIGNATURE:
        return None
    return fields[7], fields[8]


def _count_records(data: bytes, max_entries: int, what: str) -> int:
    count = at = 0
    while at < len(data):
        if count == max_entries:
            raise ZipDirectoryError(f"the {what} holds more than {max_entries:,} entries")
        if len(data) - at < RECORD.size or data[at : at + 4] != RECORD_SIGNATURE:
            raise DamagedZip(f"the file is not a readable {what} archive (a damaged directory)")
        fields = RECORD.unpack_from(data, at)
        at += RECORD.size + fields[12] + fields[13] + fields[14]  # name, extra field, comment
        count += 1
    return count
