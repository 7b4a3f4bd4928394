"""The run directory: the one owner of a generation run's files.

DESIGN.md ("Meeting reality") asks for one owner module, an exclusive lock per run, and a run directory that never
truncates, overwrites or deletes what it cannot prove it wrote. Every name, check and clean-up of a run directory
lives here; :class:`~simgap_ext.pipeline.GenerationRunner` (``simgap generate``, the Kit batch) and the Replicator
writer's :class:`~simgap_ext.replicator.sink.GatedExportSink` go through it. Layout (see ``docs/pipeline.md``)::

    run.json             the run configuration and its run_id (``simgap generate``; written once, compared on resume)
    writer.json          the run_id of a Replicator writer's export (instead of run.json)
    manifest.jsonl       one row per attempt, each carrying the run_id
    gate_state.json      the gate's state after the last row (:func:`encode_gate_state`)
    bank.npz             the reference bank cache of ``generate --real``
    label_map.yaml, velodyne/NNNNNN.bin, labels/NNNNNN.label     the SemanticKITTI export
    .simgap.lock         ``flock``-ed while a process writes the directory; holds that process's pid
    .simgap-pending.json the export in flight: run_id, scan index and point count (written before the scan)

What counts as proof that a file is ours:

- ``run.json`` / ``writer.json``: a JSON object of this format with a ``run_id``;
- a manifest row: its ``run_id`` field equals the owner record's;
- a torn last manifest line (a kill mid-append): its bytes and ``{"run_id":"<id>",`` agree on their common length
  (rows are written with ``run_id`` first);
- a temporary file: ``.<name>.<run_id>.<random>.tmp`` (:func:`~simgap_ext.data.atomic.temp_tag`);
- a scan/label file that no row records: ``.simgap-pending.json`` of this run names its index and its size matches
  the point count recorded there exactly.

Anything else in the way is refused with a :class:`~simgap_ext.errors.SimGapInputError` naming it, and left as it
is. Paths SimGap writes (the manifest, run.json, ``velodyne/``...) may not be symlinks.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import atomic_write_bytes, os_error_reason
from ..data.label_map import LABEL_MAP_FILENAME
from ..errors import ExportError, SimGapInputError

__all__ = [
    "MANIFEST_NAME",
    "RUN_CONFIG_NAME",
    "WRITER_RECORD_NAME",
    "GATE_STATE_NAME",
    "BANK_CACHE_NAME",
    "LOCK_NAME",
    "PENDING_NAME",
    "RunDirBusyError",
    "RunDir",
    "new_run_id",
    "run_id_for_config",
    "encode_gate_state",
    "decode_gate_state",
]

_log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
RUN_CONFIG_NAME = "run.json"
WRITER_RECORD_NAME = "writer.json"
GATE_STATE_NAME = "gate_state.json"
BANK_CACHE_NAME = "bank.npz"
LOCK_NAME = ".simgap.lock"
PENDING_NAME = ".simgap-pending.json"

RUN_FORMAT = 1
GATE_STATE_FORMAT = 1
_RUN_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_SCAN_RE = re.compile(r"^(\d{6})\.(bin|label)$")
# Bytes per point of the exported files (float32 x, y, z, intensity; uint32 label).
_BYTES_PER_POINT = {"bin": 16, "label": 4}

# Locks this process holds, per (directory, thread): re-entrant within one thread (the CLI locks before building
# the bank cache, then the runner locks again), exclusive between threads and processes (flock conflicts between
# two open file descriptions, even of one process).
_HELD: dict[tuple[str, int], list[Any]] = {}
_HELD_GUARD = threading.Lock()


class RunDirBusyError(SimGapInputError):
    """Another process (or thread) holds the run directory's lock."""


def new_run_id() -> str:
    """A random run id (16 hex digits) for writer sessions."""
    return secrets.token_hex(8)


def run_id_for_config(config_sha256: str) -> str:
    """The run id of a ``simgap generate`` run: the first 16 hex digits of its configuration's SHA-256.

    Derived, not random, so that a resumed run writes byte-identical files and rows to an uninterrupted one; two
    runs with the same configuration in one directory at once are excluded by the lock.
    """
    if not re.fullmatch(r"[0-9a-f]{64}", config_sha256):
        raise ValueError(f"expected a SHA-256 hex digest, got {config_sha256!r}")
    return config_sha256[:16]


class RunDir:
    """The files of one run directory.

    Args:
        path: the directory (need not exist yet).
    """

    path: Path

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.removed: list[Path] = []

    # ------------------------------------------------------------------ names
    @property
    def manifest(self) -> Path:
        """``manifest.jsonl``."""
        return self.path / MANIFEST_NAME

    @property
    def run_config(self) -> Path:
        """``run.json``."""
        return self.path / RUN_CONFIG_NAME

    @property
    def writer_record(self) -> Path:
        """``writer.json``."""
        return self.path / WRITER_RECORD_NAME

    @property
    def gate_state(self) -> Path:
        """``gate_state.json``."""
        return self.path / GATE_STATE_NAME

    @property
    def bank_cache(self) -> Path:
        """``bank.npz``."""
        return self.path / BANK_CACHE_NAME

    @property
    def pending(self) -> Path:
        """``.simgap-pending.json``."""
        return self.path / PENDING_NAME

    def _written_paths(self) -> list[Path]:
        return [
            self.manifest,
            self.run_config,
            self.writer_record,
            self.gate_state,
            self.bank_cache,
            self.pending,
            self.path / LOCK_NAME,
            self.path / LABEL_MAP_FILENAME,
            self.path / "velodyne",
            self.path / "labels",
        ]

    # ------------------------------------------------------------------ checks
    def create(self) -> None:
        """Create the directory (and parents) and refuse symlinks where SimGap writes.

        Raises:
            SimGapInputError: a symlink at a path SimGap writes.
            ExportError: the directory cannot be created.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot create output directory {self.path}: {os_error_reason(exc)}") from exc
        self.refuse_symlinks()

    def refuse_symlinks(self) -> None:
        """Raise when a path SimGap writes is a symlink (writing through it would change a file elsewhere)."""
        for p in self._written_paths():
            if p.is_symlink():
                raise SimGapInputError(
                    f"{p} is a symbolic link; SimGap writes only real files and directories in a run directory "
                    "(choose another output directory)"
                )

    def check_fresh(self, *, bank_cache_ok: bool = False) -> None:
        """Refuse a directory that already holds files of SimGap's names (a fresh run would overwrite them).

        Args:
            bank_cache_ok: ``bank.npz`` may exist (the caller passed it as the bank to use, it is not rewritten).

        Raises:
            SimGapInputError: naming the first such file.
        """
        self.refuse_symlinks()
        taken = [self.run_config, self.manifest, self.writer_record, self.gate_state, self.path / LABEL_MAP_FILENAME]
        if not bank_cache_ok:
            taken.append(self.bank_cache)
        for p in taken:
            if p.exists():
                what = "a generation run" if p == self.run_config else f"a {p.name} that no SimGap run here records"
                raise SimGapInputError(
                    f"{self.path} already holds {what} ({p.name}); pass --resume to continue a run, or choose an empty "
                    "output directory (SimGap never overwrites files it did not write)"
                )
        scans = self.scan_files()
        if scans:
            raise SimGapInputError(
                f"{self.path} holds SemanticKITTI scans but no {MANIFEST_NAME} ({scans[0].relative_to(self.path)}); "
                "choose an empty output directory"
            )

    def scan_files(self) -> list[Path]:
        """``velodyne/NNNNNN.bin`` and ``labels/NNNNNN.label`` files, sorted."""
        out: list[Path] = []
        for sub in ("velodyne", "labels"):
            d = self.path / sub
            if d.is_dir():
                out.extend(p for p in sorted(d.iterdir()) if _SCAN_RE.match(p.name))
        return out

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory's exclusive lock for the ``with`` block (re-entrant within one thread).

        Raises:
            RunDirBusyError: another process or thread holds it (the message names the holder's pid).
            SimGapInputError: the lock file is a symlink or not SimGap's.
            ExportError: the lock file cannot be created.
        """
        self.create()
        key = (os.path.realpath(self.path), threading.get_ident())
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:
                held[1] += 1
        if held is not None:
            try:
                yield
            finally:
                with _HELD_GUARD:
                    held[1] -= 1
            return
        fd = self._acquire()
        with _HELD_GUARD:
            _HELD[key] = [fd, 1]
        try:
            yield
        finally:
            with _HELD_GUARD:
                entry = _HELD[key]
                entry[1] -= 1
                last = entry[1] == 0
                if last:
                    del _HELD[key]
            if last:
                # The lock file stays: unlinking a flock-ed file lets a third process lock a new inode meanwhile.
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _acquire(self) -> int:
        path = self.path / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SimGapInputError(f"{path} is a symbolic link; refusing to use it as SimGap's lock") from exc
            raise ExportError(f"{os_error_reason(exc)} creating lock file {path}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                who = f"pid {holder}" if holder else "another process"
                if holder == os.getpid():
                    who = f"pid {holder}, this process (another thread)"
                raise RunDirBusyError(
                    f"{self.path} is being written by another simgap run ({who}); wait for it to end or stop it "
                    "(two writers would corrupt the manifest)"
                ) from None
            content = os.pread(fd, 64, 0)
            if content and not re.fullmatch(rb"\d{1,10}\n?", content):
                raise SimGapInputError(f"{path} exists and is not a SimGap lock file; move it away")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    # ------------------------------------------------------------------ owner records
    def read_owner(self, path: Path) -> dict[str, Any] | None:
        """Read and type-check ``run.json``/``writer.json``; ``None`` when absent.

        Raises:
            SimGapInputError: unreadable, not a JSON object, wrong format or no valid ``run_id``.
        """
        if path.is_symlink():
            raise SimGapInputError(f"{path} is a symbolic link; refusing to use it")
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SimGapInputError(f"{path}: cannot read ({os_error_reason(exc)})") from exc
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise SimGapInputError(f"{path}: not valid JSON ({str(exc)[:80]})") from exc
        if not isinstance(doc, dict):
            raise SimGapInputError(f"{path}: expected a JSON object, got {type(doc).__name__}; not a SimGap run record")
        if doc.get("format") != RUN_FORMAT:
            raise SimGapInputError(f"{path}: unknown run record format {doc.get('format')!r} (expected {RUN_FORMAT})")
        rid = doc.get("run_id")
        if not isinstance(rid, str) or not _RUN_ID_RE.match(rid):
            raise SimGapInputError(
                f"{path}: no valid run_id (written by an older SimGap or by hand); SimGap cannot prove it wrote this "
                "directory and will not modify it: start a new run in an empty directory"
            )
        return doc

    def write_owner(self, path: Path, doc: Mapping[str, Any]) -> None:
        """Write an owner record (refuses to replace an existing file)."""
        if path.exists() or path.is_symlink():
            raise SimGapInputError(f"{path} already exists; refusing to overwrite it")
        atomic_write_bytes(path, (json.dumps(dict(doc), indent=2, sort_keys=True) + "\n").encode())

    # ------------------------------------------------------------------ manifest ownership
    def prove_manifest(self, run_id: str) -> tuple[list[dict[str, Any]], int]:
        """Read the manifest and prove every complete row, and a torn last line, belong to run ``run_id``.

        Nothing is modified: on success the caller may cut the torn tail (its byte length is returned).

        Returns:
            (rows, torn tail length in bytes).

        Raises:
            SimGapInputError: a row of another run or none, an invalid row, or a torn tail that is not ours.
        """
        from ..data.manifest import read_manifest_bytes

        if self.manifest.is_symlink():
            raise SimGapInputError(f"{self.manifest} is a symbolic link; refusing to use it")
        try:
            data = self.manifest.read_bytes()
        except FileNotFoundError:
            return [], 0
        except OSError as exc:
            raise SimGapInputError(f"{self.manifest}: cannot read ({os_error_reason(exc)})") from exc
        rows, torn = read_manifest_bytes(data, where=str(self.manifest), tolerate_torn=True)
        for i, row in enumerate(rows, start=1):
            if row.get("run_id") != run_id:
                raise SimGapInputError(
                    f"{self.manifest}:{i}: not a row of this run (run_id {row.get('run_id')!r}, expected {run_id!r}); "
                    "SimGap leaves this manifest as it is: choose another output directory"
                )
        if torn:
            tail = data[len(data) - torn :]
            head = f'{{"run_id":"{run_id}",'.encode()
            n = min(len(tail), len(head))
            if tail[:n] != head[:n]:
                raise SimGapInputError(
                    f"{self.manifest}: its last line is incomplete and not a row of this run; SimGap leaves the "
                    "manifest as it is: choose another output directory"
                )
        return rows, torn

    def cut_manifest_tail(self, nbytes: int) -> None:
        """Cut a torn last line (``nbytes`` long, proven ours by :meth:`prove_manifest`) off the manifest."""
        try:
            fd = os.open(self.manifest, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise ExportError(f"{os_error_reason(exc)} repairing manifest {self.manifest}") from exc
        try:
            size = os.fstat(fd).st_size
            os.ftruncate(fd, max(0, size - int(nbytes)))
            os.fsync(fd)
        except OSError as exc:
            raise ExportError(f"{os_error_reason(exc)} repairing manifest {self.manifest}") from exc
        finally:
            os.close(fd)
        _log.warning("%s: cut a torn last line (%d bytes) left by an interrupted write", self.manifest, nbytes)

    # ------------------------------------------------------------------ pending export
    def record_pending(self, run_id: str, index: int, n_points: int) -> None:
        """Record the export about to be written (the proof that lets a resume delete it if no row follows)."""
        doc = {"run_id": run_id, "index": int(index), "points": int(n_points)}
        atomic_write_bytes(self.pending, (json.dumps(doc, sort_keys=True) + "\n").encode())

    def _read_pending(self, run_id: str) -> tuple[int, int] | None:
        try:
            doc = json.loads(self.pending.read_bytes())
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(doc, dict) or doc.get("run_id") != run_id:
            return None
        idx, n = doc.get("index"), doc.get("points")
        if type(idx) is not int or type(n) is not int or idx < 0 or n < 0:
            return None
        return idx, n

    # ------------------------------------------------------------------ clean-up
    def find_leftovers(self, run_id: str, keep: Sequence[int] | set[int]) -> list[Path]:
        """Files this run left behind without a manifest row: its tagged temporaries and the pending export.

        Args:
            run_id: the run's id.
            keep: scan indices the manifest records.

        Returns:
            The paths to remove (nothing is removed here).

        Raises:
            SimGapInputError: a scan/label file that no row records and that this run cannot prove it wrote.
        """
        keep = {int(i) for i in keep}
        pending = self._read_pending(run_id)
        out: list[Path] = []
        for p in self.scan_files():
            m = _SCAN_RE.match(p.name)
            assert m is not None
            idx = int(m.group(1))
            if idx in keep:
                continue
            ours = (
                pending is not None
                and idx == pending[0]
                and p.is_file()
                and not p.is_symlink()
                and p.stat().st_size == pending[1] * _BYTES_PER_POINT[m.group(2)]
            )
            if not ours:
                raise SimGapInputError(
                    f"{p} is not recorded in {MANIFEST_NAME} and this run did not write it; SimGap leaves it as it "
                    f"is: move it out of {self.path} (or choose another output directory)"
                )
            out.append(p)
        tmp_re = re.compile(rf"^\..+\.{re.escape(run_id)}\.[A-Za-z0-9_]+\.tmp$")
        for d in (self.path, self.path / "velodyne", self.path / "labels"):
            if d.is_dir() and not d.is_symlink():
                out.extend(p for p in sorted(d.iterdir()) if tmp_re.match(p.name) and p.is_file())
        return out

    def remove(self, paths: Sequence[Path]) -> list[Path]:
        """Delete ``paths`` (each proven ours by the caller) and remember them in :attr:`removed`."""
        for p in paths:
            try:
                p.unlink(missing_ok=True)
            except OSError as exc:
                raise ExportError(f"cannot remove {p}: {os_error_reason(exc)}") from exc
            self.removed.append(p)
            _log.info("removed %s (left by an interrupted run)", p)
        return list(paths)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


# ---------------------------------------------------------------------- gate-state codec
def _row_key(row: Mapping[str, Any]) -> dict[str, Any]:
    # Timestamps excluded: a resumed run's state file must be byte-identical to an uninterrupted run's.
    return json.loads(
        json.dumps(
            {k: row.get(k) for k in ("frame_id", "attempt", "seed", "decision", "index", "quarantined")},
            sort_keys=True,
            default=str,
        )
    )


def encode_gate_state(
    quarantine_state: Mapping[str, Any], *, rows: int, last_row: Mapping[str, Any], config_sha256: str | None
) -> bytes:
    """``gate_state.json`` bytes: a quarantine ``state_dict()`` after ``rows`` manifest rows.

    float32 windows go in base64 (exact); sorted keys and no timestamps keep the file deterministic, so an
    uninterrupted and a resumed run end with byte-identical state files.

    Args:
        quarantine_state: ``SemanticQuarantine.state_dict()`` (``windows``: name -> list of float32 arrays).
        rows: manifest rows the state reflects (>= 1).
        last_row: the last of those rows.
        config_sha256: the run configuration's hash (a state of another configuration is never loaded).
    """
    windows = {
        name: [
            {"shape": list(a.shape), "data": base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()}
            for a in win
        ]
        for name, win in quarantine_state["windows"].items()
    }
    doc = {
        "format": GATE_STATE_FORMAT,
        "rows": int(rows),
        "last_row": _row_key(last_row),
        "run_config_sha256": config_sha256,
        "quarantine": {**quarantine_state, "windows": windows},
    }
    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()


def decode_gate_state(
    data: bytes, rows: Sequence[Mapping[str, Any]], *, config_sha256: str | None
) -> tuple[int, dict[str, Any]]:
    """Decode ``gate_state.json`` against the manifest's rows.

    Returns:
        (k, quarantine state): the state reflects ``rows[:k]`` (1 <= k <= len(rows)).

    Raises:
        ValueError: the file is malformed, of another configuration, or does not match the rows.
    """
    try:
        doc = json.loads(data)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
    if not isinstance(doc, dict) or doc.get("format") != GATE_STATE_FORMAT:
        raise ValueError(f"unknown format {doc.get('format') if isinstance(doc, dict) else type(doc).__name__!r}")
    if doc.get("run_config_sha256") != config_sha256:
        raise ValueError("saved for another run configuration")
    k = doc.get("rows")
    if type(k) is not int or not 1 <= k <= len(rows):
        raise ValueError(f"covers {k!r} rows, the manifest has {len(rows)}")
    if doc.get("last_row") != _row_key(rows[k - 1]):
        raise ValueError(f"its last row does not match manifest row {k}")
    qs = doc.get("quarantine")
    if not isinstance(qs, dict) or not isinstance(qs.get("windows"), dict):
        raise ValueError("no quarantine state")
    qs = dict(qs)
    windows: dict[str, list[np.ndarray]] = {}
    for name, win in qs["windows"].items():
        if not isinstance(win, list):
            raise ValueError(f"window {name!r} is not a list")
        arrays = []
        for a in win:
            if not isinstance(a, dict) or not isinstance(a.get("shape"), list) or not isinstance(a.get("data"), str):
                raise ValueError(f"window {name!r}: malformed entry")
            shape = [int(d) for d in a["shape"]]
            arr = np.frombuffer(base64.b64decode(a["data"], validate=True), dtype="<f4")
            if any(d < 0 for d in shape) or math.prod(shape) != arr.size:
                raise ValueError(f"window {name!r}: shape {shape} does not fit {arr.size} values")
            arrays.append(arr.reshape(shape).astype(np.float32))
        windows[str(name)] = arrays
    qs["windows"] = windows
    return k, qs
