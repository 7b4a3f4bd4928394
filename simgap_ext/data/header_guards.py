"""Bounded header checks run before a format library allocates anything: declared sizes are never trusted.

A point-cloud header states how much data follows (LAS point and VLR counts, PLY element counts, PCD ``POINTS``,
NPY shapes). A crafted or truncated file can declare 10^12 points or 0xFFFFFFFF VLRs, which makes laspy, plyfile,
pypcd4 or NumPy allocate terabytes or loop for minutes. Each ``check_*`` here reads at most a small, fixed prefix of
the file, parses the declared sizes itself, and checks them against the bytes actually present (for compressed data
against the most a compressor can expand) before the real reader runs. :func:`time_limit` bounds the wall time of
the library call on top of that.

Every failure is a :class:`~simgap_ext.errors.SimGapInputError` that names the file and the declared size.
"""

from __future__ import annotations

import contextlib
import signal
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import SimGapInputError

__all__ = [
    "READ_TIME_LIMIT_S",
    "check_las_header",
    "check_ply_header",
    "check_pcd_header",
    "check_npz_members",
    "time_limit",
]

#: Wall-time bound around a format library's read (seconds); a real scan reads in well under a second.
READ_TIME_LIMIT_S = 60.0
_MAX_HEADER_BYTES = 64 * 1024
# LAZ (and PCD's LZF) cannot expand data without bound: LZF at most ~88x per byte, LAZ far less in practice.
_MAX_EXPANSION = 100
# Bytes every LAS point format record holds at least (ASPRS LAS 1.4 R15, Table 7ff.), formats 0-10.
_LAS_MIN_RECORD = {0: 20, 1: 28, 2: 26, 3: 34, 4: 57, 5: 63, 6: 30, 7: 36, 8: 38, 9: 59, 10: 67}
_PLY_SIZES = {
    "char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
    "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8,
}  # fmt: skip


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{p}: file not found") from exc
    except OSError as exc:
        raise SimGapInputError(f"{p}: cannot read file ({exc.strerror or exc})") from exc


def _head(p: Path, n: int) -> bytes:
    try:
        with p.open("rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise SimGapInputError(f"{p}: cannot read file ({exc.strerror or exc})") from exc


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`SimGapInputError` when the block runs longer than ``seconds`` (main thread on POSIX only;
    elsewhere the header checks are the only guard)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def _expired(signum, frame):  # noqa: ANN001, ARG001 - signal handler signature
        raise SimGapInputError(f"{what}: reading took longer than {seconds:g} s; the file is not a usable scan")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_las_header(path: str | Path) -> None:
    """Check a LAS/LAZ public header block against the file size (ASPRS LAS 1.0-1.4 layout).

    Raises:
        SimGapInputError: not a LAS file, an unsupported version (only 1.0-1.4 exist), a header/point-data offset
            beyond the file, more VLRs/EVLRs than the bytes can hold, or more points than the data can hold.
    """
    p = Path(path)
    size = _size(p)
    head = _head(p, 375)
    if len(head) < 227 or head[:4] != b"LASF":
        raise SimGapInputError(f"{p}: not a LAS file (no 'LASF' signature in a {size}-byte file)")
    major, minor = head[24], head[25]
    if major != 1 or minor > 4:
        raise SimGapInputError(f"{p}: LAS version {major}.{minor} does not exist (supported: 1.0-1.4)")
    (header_size,) = struct.unpack_from("<H", head, 94)
    offset, n_vlrs = struct.unpack_from("<II", head, 96)
    fmt_byte, record_len, legacy_count = struct.unpack_from("<BHI", head, 104)
    if not 227 <= header_size <= offset <= size:
        raise SimGapInputError(
            f"{p}: LAS header size {header_size} / point data offset {offset} do not fit a {size}-byte file"
        )
    if n_vlrs * 54 > offset - header_size:  # a VLR header alone is 54 bytes
        raise SimGapInputError(
            f"{p}: LAS header declares {n_vlrs} VLRs, but only {offset - header_size} bytes precede the points"
        )
    count = legacy_count
    if minor >= 4 and len(head) >= 255:
        evlr_start, n_evlrs, count64 = struct.unpack_from("<QIQ", head, 235)
        count = count64 or legacy_count
        if n_evlrs and (evlr_start > size or n_evlrs * 60 > size - evlr_start):
            raise SimGapInputError(f"{p}: LAS header declares {n_evlrs} extended VLRs that do not fit the file")
    point_format = fmt_byte & 0x3F
    compressed = bool(fmt_byte & 0x80) or p.suffix.lower() == ".laz"
    if point_format not in _LAS_MIN_RECORD or record_len < _LAS_MIN_RECORD[point_format]:
        raise SimGapInputError(f"{p}: LAS point format {point_format} with {record_len}-byte records is not valid")
    budget = (size - offset) * (_MAX_EXPANSION if compressed else 1)
    if count * record_len > budget:
        raise SimGapInputError(
            f"{p}: LAS header declares {count} points ({count * record_len} bytes) but the file holds "
            f"{size - offset} bytes of point data"
        )
    if compressed:
        _check_laz_chunk_table(p, size, offset, count)


def _check_laz_chunk_table(p: Path, size: int, offset: int, count: int) -> None:
    # LAZ point data starts with the int64 offset of the chunk table (version u32, chunk count u32). lazrs sizes
    # its chunk list from that count, and a failed allocation aborts the whole process: bound it first.
    try:
        with p.open("rb") as fh:
            fh.seek(offset)
            raw = fh.read(8)
            if len(raw) < 8:
                raise SimGapInputError(f"{p}: LAZ point data is truncated (no chunk table offset)")
            (table,) = struct.unpack("<q", raw)
            if table == -1:  # written by a streaming writer without a table: lazrs scans the chunks itself
                return
            if not offset + 8 <= table <= size - 8:
                raise SimGapInputError(f"{p}: LAZ chunk table offset {table} lies outside the {size}-byte file")
            fh.seek(table)
            version, n_chunks = struct.unpack("<II", fh.read(8))
    except OSError as exc:
        raise SimGapInputError(f"{p}: cannot read LAZ chunk table ({exc.strerror or exc})") from exc
    if version != 0 or n_chunks > min(count, table - offset) + 1:
        raise SimGapInputError(
            f"{p}: LAZ chunk table declares {n_chunks} chunks (version {version}) for {count} points in "
            f"{table - offset} bytes"
        )


def _header_lines(p: Path, end: bytes, what: str) -> tuple[list[str], int]:
    head = _head(p, _MAX_HEADER_BYTES)
    lines: list[str] = []
    pos = 0
    while True:
        nl = head.find(b"\n", pos)
        if nl < 0:
            raise SimGapInputError(f"{p}: {what} header has no '{end.decode()}' line in its first {len(head)} bytes")
        raw = head[pos:nl].rstrip(b"\r")
        pos = nl + 1
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise SimGapInputError(f"{p}: {what} header line is not ASCII text") from exc
        lines.append(line)
        if line.split(" ", 1)[0] == end.decode():
            return lines, pos


def check_ply_header(path: str | Path) -> None:
    """Check a PLY header's element counts against the bytes after ``end_header``.

    Raises:
        SimGapInputError: no ``ply``/``end_header``, unknown property types, non-integer or negative counts, or
            elements that cannot fit in the data that follows.
    """
    p = Path(path)
    size = _size(p)
    if _head(p, 3) != b"ply":
        raise SimGapInputError(f"{p}: not a PLY file (no 'ply' magic)")
    lines, header_len = _header_lines(p, b"end_header", "PLY")
    fmt = "ascii"
    elements: list[list[int]] = []  # per element: [count, min bytes per element]
    for line in lines:
        t = line.split()
        if not t:
            continue
        if t[0] == "format" and len(t) >= 2:
            fmt = t[1]
        elif t[0] == "element":
            if len(t) != 3 or not t[2].isdigit():
                raise SimGapInputError(f"{p}: bad PLY element line {line[:80]!r}")
            elements.append([int(t[2]), 0])
        elif t[0] == "property":
            if not elements:
                raise SimGapInputError(f"{p}: PLY property before any element")
            types = t[2:3] if t[1:2] == ["list"] else t[1:2]
            if not types or types[0] not in _PLY_SIZES:
                raise SimGapInputError(f"{p}: unknown PLY property type in {line[:80]!r}")
            elements[-1][1] += 2 if fmt == "ascii" else _PLY_SIZES[types[0]]
    remaining = size - header_len
    need = sum(count * max(per, 1) for count, per in elements)
    if need > remaining:
        raise SimGapInputError(
            f"{p}: PLY header declares elements needing at least {need} bytes, the file holds {remaining} after "
            "its header"
        )


def check_pcd_header(path: str | Path) -> None:
    """Check a PCD header's ``POINTS`` (and ``WIDTH`` x ``HEIGHT``) against the data that follows ``DATA``.

    Raises:
        SimGapInputError: missing or non-integer fields, ``POINTS`` != ``WIDTH * HEIGHT``, or more points than the
            (decompressed, at most :data:`_MAX_EXPANSION` times) data can hold.
    """
    p = Path(path)
    size = _size(p)
    lines, header_len = _header_lines(p, b"DATA", "PCD")
    fields: dict[str, list[str]] = {}
    for line in lines:
        t = line.split()
        if t and not t[0].startswith("#"):
            fields[t[0].upper()] = t[1:]

    def _ints(key: str, default: list[int] | None = None) -> list[int]:
        vals = fields.get(key)
        if vals is None:
            if default is not None:
                return default
            raise SimGapInputError(f"{p}: PCD header has no {key} line")
        if not vals or not all(v.isdigit() for v in vals):
            raise SimGapInputError(f"{p}: PCD {key} must hold non-negative integers, got {' '.join(vals)[:80]!r}")
        return [int(v) for v in vals]

    sizes = _ints("SIZE")
    counts = _ints("COUNT", [1] * len(sizes))
    if len(counts) != len(sizes) or len(sizes) != len(fields.get("FIELDS", [])):
        raise SimGapInputError(f"{p}: PCD FIELDS, SIZE and COUNT have different lengths")
    (width,), (height,) = _ints("WIDTH"), _ints("HEIGHT")
    points = _ints("POINTS", [width * height])[0]
    if points != width * height:
        raise SimGapInputError(f"{p}: PCD POINTS {points} is not WIDTH x HEIGHT = {width} x {height}")
    row = sum(s * c for s, c in zip(sizes, counts, strict=True))
    data = (fields.get("DATA") or ["?"])[0].lower()
    remaining = size - header_len
    if data == "ascii":
        need, budget = points * 2 * max(sum(counts), 1), remaining
    elif data == "binary":
        need, budget = points * row, remaining
    elif data == "binary_compressed":
        need, budget = points * row, max(remaining - 8, 0) * _MAX_EXPANSION + 1024
    else:
        raise SimGapInputError(f"{p}: PCD DATA {data!r} is not ascii, binary or binary_compressed")
    if need > budget:
        raise SimGapInputError(
            f"{p}: PCD header declares {points} points ({need} bytes) but only {remaining} bytes follow its header"
        )


def check_npz_members(path: str | Path) -> None:
    """Check that every member of an ``.npz`` is an ``.npy`` array whose declared shape fits its stored bytes.

    Raises:
        SimGapInputError: not a zip archive, a member that is not ``.npy``, an unreadable NPY header, a shape
            whose bytes differ from the member's size, or members that expand beyond what deflate can produce.
    """
    p = Path(path)
    size = _size(p)
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
            if len(infos) > 4096:
                raise SimGapInputError(f"{p}: .npz with {len(infos)} members is not a point cloud")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise SimGapInputError(f"{p}: .npz member {info.filename[:80]!r} is not a .npy array")
                # deflate expands at most ~1032x; stored members are their own size
                if info.file_size > max(info.compress_size, 1) * 1100 or info.compress_size > size:
                    raise SimGapInputError(f"{p}: .npz member {info.filename!r} declares an impossible size")
                with z.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=10000)
                    elif version in ((2, 0), (3, 0)):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=10000)
                    else:  # pragma: no cover - read_magic only returns known versions
                        raise SimGapInputError(f"{p}: .npz member {info.filename!r} has NPY version {version}")
                    header_len = fh.tell()
                if dtype.hasobject:
                    raise SimGapInputError(f"{p}: .npz member {info.filename!r} holds Python objects")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if nbytes != info.file_size - header_len:
                    raise SimGapInputError(
                        f"{p}: .npz member {info.filename!r} declares shape {shape} ({nbytes} bytes) but stores "
                        f"{info.file_size - header_len}"
                    )
    except SimGapInputError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        ValueError,
        OSError,
        EOFError,
        KeyError,
        NotImplementedError,
        struct.error,
    ) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SimGapInputError(f"{p}: not a readable .npz archive ({msg})") from exc
