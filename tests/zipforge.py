"""Forged ZIP archives, built in the test: a real archive whose central directory is padded with records and
whose end records say what the test wants."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

END = struct.Struct("<4s4H2LH")
END64 = struct.Struct("<4sQ2H2L4Q")
LOCATOR = struct.Struct("<4sLQL")
RECORD = struct.Struct("<4s4B4HL2L5H2L")


def record(name: bytes) -> bytes:
    """A central directory record of an empty stored file (its local header need not exist)."""
    return RECORD.pack(b"PK\x01\x02", 20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0) + name


def forge(
    source: Path,
    target: Path,
    *,
    padding: int = 0,
    count: int | None = None,
    zip64: tuple[int, int] | None = None,
) -> Path:
    """`source` with `padding` more directory records; the end record declares `count` entries (default: the
    true count, capped at 65,535); `zip64` = (entries, directory size) adds a ZIP64 end record declaring those."""
    data = source.read_bytes()
    end_at = data.rfind(b"PK\x05\x06")
    fields = list(END.unpack_from(data, end_at))
    size, offset = fields[5], fields[6]
    directory = data[offset : offset + size] + b"".join(record(b"p%07d" % i) for i in range(padding))
    entries = fields[4] + padding
    shown = min(entries, 0xFFFF) if count is None else count
    tail = b""
    if zip64 is not None:
        at = offset + len(directory)
        tail = END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, zip64[0], zip64[0], zip64[1], offset)
        tail += LOCATOR.pack(b"PK\x06\x07", 0, at, 1)
    end = END.pack(b"PK\x05\x06", 0, 0, shown, shown, min(len(directory), 0xFFFFFFFF), offset, 0)
    target.write_bytes(data[:offset] + directory + tail + end)
    return target


def small_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path
