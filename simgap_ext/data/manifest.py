"""Sample manifests: append-only JSON Lines, one row per sample or generation attempt (DESIGN.md, "Manifests").

A row records where a sample lives, where it came from and what the gate said about it::

    {"schema_version": 1, "domain": "synthetic", "path": "velodyne/000003.bin", "label_path": "labels/000003.label",
     "index": 3, "sensor": "vlp-16", "seed": 1234, "attempt": 0, "frame_id": 5, "focus_classes": ["wheelchair_user"],
     "class_points": {"pedestrian": 212}, "class_instances": {"pedestrian": 2}, "g": {"pedestrian": 0.91},
     "js": {"pedestrian": 0.04}, "scene_g": 0.88, "failing_classes": [], "quarantined": [],
     "decision": "accepted", "reasons": [], "timestamp": "2026-11-25T13:00:00.000000Z"}

Paths are relative to the manifest's directory (POSIX separators) so that a run directory can be moved as a
whole. Rows of attempts that were not exported have ``path``/``label_path``/``index`` null.

Crash safety: :class:`ManifestWriter` appends each row as one ``write`` of a complete line followed by
``fsync``; a failed write is truncated away, so the file only ever holds complete lines. A process killed in the
middle of a write can leave a torn last line (no trailing newline); :func:`read_manifest` ignores it and
``repair=True`` (or opening a :class:`ManifestWriter`) cuts it off. The schema (:data:`MANIFEST_SCHEMA`) is shipped
as ``docs/manifest.schema.json``.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ExportError, SimGapInputError
from .atomic import os_error_reason

__all__ = [
    "SCHEMA_VERSION",
    "DECISIONS",
    "MANIFEST_SCHEMA",
    "ManifestWriter",
    "read_manifest",
    "repair_manifest",
    "validate_manifest_row",
    "make_row",
    "utc_timestamp",
    "resolve_row_path",
    "read_manifest_bytes",
]

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

#: Row decisions. ``rerandomized``: rejected and sent back for another attempt; ``held_back``: blocked only by a
#: class in semantic quarantine; ``rejected``: final failure; ``accepted``: exported (real rows are ``accepted``).
DECISIONS = ("accepted", "rejected", "rerandomized", "held_back")

_NULLABLE_NUMBER = {"type": ["number", "null"]}
_COUNT_MAP = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
_SCORE_MAP = {"type": "object", "additionalProperties": {"type": ["number", "null"], "minimum": 0, "maximum": 1}}
_STR_LIST = {"type": "array", "items": {"type": "string"}}

#: JSON Schema (draft 2020-12) of one manifest row; ``docs/manifest.schema.json`` is this, serialised.
MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://simgap.dev/schemas/manifest-row-v1.json",
    "title": "SimGap manifest row",
    "description": "One line of a SimGap JSON Lines manifest: one real sample or one synthetic generation attempt.",
    "type": "object",
    "required": [
        "schema_version",
        "domain",
        "path",
        "label_path",
        "sensor",
        "seed",
        "attempt",
        "frame_id",
        "focus_classes",
        "class_points",
        "class_instances",
        "g",
        "js",
        "decision",
        "reasons",
        "timestamp",
    ],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "domain": {"enum": ["real", "synthetic"]},
        "path": {
            "description": "scan file relative to the manifest's directory; null when the attempt was not exported",
            "type": ["string", "null"],
            "minLength": 1,
        },
        "label_path": {
            "description": "label file relative to the manifest's directory; null when not exported, or for real "
            "samples whose labels live in the scan file itself (.npz/.ply/.las) or that have none",
            "type": ["string", "null"],
            "minLength": 1,
        },
        "index": {"description": "export index (NNNNNN of the file names)", "type": ["integer", "null"], "minimum": 0},
        "name": {"description": "sample name (scan stem for real data)", "type": "string"},
        "sensor": {"type": "string", "minLength": 1},
        "seed": {"type": ["integer", "null"]},
        "attempt": {"type": "integer", "minimum": 0},
        "frame_id": {"type": ["integer", "null"], "minimum": 0},
        "focus_classes": _STR_LIST,
        "class_points": _COUNT_MAP,
        "class_instances": _COUNT_MAP,
        "g": _SCORE_MAP,
        "js": _SCORE_MAP,
        "scene_g": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "failing_classes": _STR_LIST,
        "quarantined": _STR_LIST,
        "decision": {"enum": list(DECISIONS)},
        "reasons": _STR_LIST,
        "timestamp": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"},
        "bucket": {"description": "class-frequency bucket (mixed manifests)", "enum": ["head", "body", "tail"]},
        "split": {"description": "train/val split (mixed manifests)", "enum": ["train", "val"]},
        "source_manifest": {"description": "manifest a mixed row came from", "type": "string"},
        "run_id": {
            "description": "id of the SimGap run that wrote the row (16 hex digits; the first key of the line)",
            "type": "string",
            "pattern": "^[0-9a-f]{16}$",
        },
    },
}

_validator = None


def _get_validator():
    global _validator
    if _validator is None:
        import jsonschema

        cls = jsonschema.validators.validator_for(MANIFEST_SCHEMA)
        cls.check_schema(MANIFEST_SCHEMA)
        _validator = cls(MANIFEST_SCHEMA)
    return _validator


_REQUIRED = frozenset(MANIFEST_SCHEMA["required"])
_ALLOWED = frozenset(MANIFEST_SCHEMA["properties"])
_TIMESTAMP_RE = re.compile(MANIFEST_SCHEMA["properties"]["timestamp"]["pattern"])


def _is_int(v: Any, minimum: int | None = None) -> bool:
    return type(v) is int and (minimum is None or v >= minimum)


def _is_str_list(v: Any) -> bool:
    return type(v) is list and all(type(x) is str for x in v)


def _is_count_map(v: Any) -> bool:
    return type(v) is dict and all(type(k) is str and _is_int(x, 0) for k, x in v.items())


def _is_unit(v: Any) -> bool:
    # NaN compares false both ways, so "0 <= v <= 1" already refuses it; JSON Schema's minimum/maximum do not.
    return v is None or (type(v) in (int, float) and 0 <= v <= 1)


_RUN_ID_RE = re.compile(r"^[0-9a-f]{16}$")


def _fast_valid(row: dict[str, Any]) -> bool:
    """True only for rows :data:`MANIFEST_SCHEMA` accepts (stricter: e.g. ``1.0`` is no integer here)."""
    keys = row.keys()
    if not (_REQUIRED <= keys <= _ALLOWED):
        return False
    if not (
        _is_int(row["schema_version"])
        and row["schema_version"] == SCHEMA_VERSION
        and row["domain"] in ("real", "synthetic")
        and row["decision"] in DECISIONS
        and all(row[k] is None or (type(row[k]) is str and row[k]) for k in ("path", "label_path"))
        and type(row["sensor"]) is str
        and row["sensor"]
        and (row["seed"] is None or _is_int(row["seed"]))
        and _is_int(row["attempt"], 0)
        and (row["frame_id"] is None or _is_int(row["frame_id"], 0))
        and _is_str_list(row["focus_classes"])
        and _is_str_list(row["reasons"])
        and _is_count_map(row["class_points"])
        and _is_count_map(row["class_instances"])
        and all(
            type(row[k]) is dict and all(type(c) is str and _is_unit(v) for c, v in row[k].items()) for k in ("g", "js")
        )
        and type(row["timestamp"]) is str
        and _TIMESTAMP_RE.search(row["timestamp"]) is not None
    ):
        return False
    for key in ("failing_classes", "quarantined"):
        if key in row and not _is_str_list(row[key]):
            return False
    return (
        ("index" not in row or row["index"] is None or _is_int(row["index"], 0))
        and ("scene_g" not in row or _is_unit(row["scene_g"]))
        and ("name" not in row or type(row["name"]) is str)
        and ("bucket" not in row or row["bucket"] in ("head", "body", "tail"))
        and ("split" not in row or row["split"] in ("train", "val"))
        and ("source_manifest" not in row or type(row["source_manifest"]) is str)
        and ("run_id" not in row or (type(row["run_id"]) is str and _RUN_ID_RE.match(row["run_id"]) is not None))
    )


def _non_finite_field(row: dict[str, Any]) -> str | None:
    """The first score field holding NaN/inf (JSON Schema's bounds let NaN through), or None."""
    for key in ("g", "js"):
        value = row.get(key)
        if isinstance(value, dict):
            for name, v in value.items():
                if isinstance(v, float) and not math.isfinite(v):
                    return f"{key}/{name}"
    v = row.get("scene_g")
    if isinstance(v, float) and not math.isfinite(v):
        return "scene_g"
    return None


def _escaping_path(value: Any) -> bool:
    """A path that leaves the manifest's directory (absolute, or with a ``..`` component)."""
    if not isinstance(value, str):
        return False
    parts = value.replace("\\", "/").split("/")
    return value.startswith(("/", "\\")) or (len(value) > 1 and value[1] == ":") or ".." in parts


def validate_manifest_row(row: Mapping[str, Any], *, where: str = "manifest row") -> dict[str, Any]:
    """Check one row against :data:`MANIFEST_SCHEMA` and the rules JSON Schema cannot say.

    Args:
        row: a decoded manifest row.
        where: how to name the row in error messages (e.g. ``"run/manifest.jsonl:3"``).

    Returns:
        ``row`` as a plain dict.

    Raises:
        SimGapInputError: naming ``where``, the field and the problem.
    """
    if not isinstance(row, Mapping):
        raise SimGapInputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    row = dict(row)
    # jsonschema costs ~0.3 ms a row (30 s to re-read a 100k-row manifest on resume); the fast check accepts only
    # rows the schema accepts, and anything it doubts goes to jsonschema for the verdict and the message.
    fast = _fast_valid(row)
    if not fast:
        bad = _non_finite_field(row)
        if bad is not None:
            raise SimGapInputError(f"{where}: field {bad}: a score must be a finite number in [0, 1] or null")
    errors = [] if fast else sorted(_get_validator().iter_errors(row), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        field = "/".join(str(p) for p in err.absolute_path) or "(row)"
        raise SimGapInputError(f"{where}: field {field}: {err.message[:200]}")
    exported = row["path"] is not None
    if row["domain"] == "synthetic" and "source_manifest" not in row:
        for key in ("path", "label_path"):
            if _escaping_path(row[key]):
                # A generation run's scans live in its directory (only mixed rows point elsewhere); a path out of it
                # would make a resume check, or `mix` read, someone else's file.
                raise SimGapInputError(
                    f"{where}: field {key}: {row[key]!r} leaves the manifest's directory (absolute or '..')"
                )
        if exported != (row["label_path"] is not None):
            raise SimGapInputError(f"{where}: path and label_path must both be set or both be null")
        if exported != (row["decision"] == "accepted"):
            raise SimGapInputError(
                f"{where}: a synthetic row has a path exactly when its decision is 'accepted' "
                f"(decision {row['decision']!r}, path {row['path']!r})"
            )
    elif not exported:
        raise SimGapInputError(f"{where}: a real row needs a path")
    return row


def utc_timestamp(now: _dt.datetime | None = None) -> str:
    """ISO 8601 UTC timestamp with microseconds and a ``Z`` suffix."""
    now = now or _dt.datetime.now(_dt.UTC)
    return now.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _score(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def make_row(
    *,
    domain: str,
    sensor: str,
    decision: str,
    path: str | None = None,
    label_path: str | None = None,
    index: int | None = None,
    seed: int | None = None,
    attempt: int = 0,
    frame_id: int | None = None,
    focus_classes: Iterable[str] = (),
    class_points: Mapping[str, int] | None = None,
    class_instances: Mapping[str, int] | None = None,
    g: Mapping[str, float | None] | None = None,
    js: Mapping[str, float | None] | None = None,
    scene_g: float | None = None,
    failing_classes: Iterable[str] = (),
    quarantined: Iterable[str] = (),
    reasons: Iterable[str] = (),
    name: str | None = None,
    timestamp: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Build a schema-valid row from plain values (numpy scalars are converted; NaN scores become null).

    ``run_id`` (the writing run's id, :mod:`simgap_ext.pipeline.run_dir`) becomes the row's first key, so that
    even a line torn by a kill shows which run wrote it.

    Raises:
        SimGapInputError: if the result does not validate.
    """
    row: dict[str, Any] = {} if run_id is None else {"run_id": str(run_id)}
    row |= {
        "schema_version": SCHEMA_VERSION,
        "domain": domain,
        "path": path,
        "label_path": label_path,
        "index": None if index is None else int(index),
        "sensor": str(sensor),
        "seed": None if seed is None else int(seed),
        "attempt": int(attempt),
        "frame_id": None if frame_id is None else int(frame_id),
        "focus_classes": [str(c) for c in focus_classes],
        "class_points": {str(k): int(v) for k, v in sorted((class_points or {}).items())},
        "class_instances": {str(k): int(v) for k, v in sorted((class_instances or {}).items())},
        "g": {str(k): _score(v) for k, v in sorted((g or {}).items())},
        "js": {str(k): _score(v) for k, v in sorted((js or {}).items())},
        "scene_g": _score(scene_g),
        "failing_classes": sorted(str(c) for c in failing_classes),
        "quarantined": sorted(str(c) for c in quarantined),
        "decision": decision,
        "reasons": [str(r) for r in reasons],
        "timestamp": timestamp or utc_timestamp(),
    }
    if name is not None:
        row["name"] = str(name)
    return validate_manifest_row(row)


def resolve_row_path(manifest_path: str | Path, row: Mapping[str, Any], key: str = "path") -> Path | None:
    """The absolute path of a row's ``path``/``label_path`` (relative to the manifest's directory)."""
    value = row.get(key)
    if value is None:
        return None
    p = Path(value)
    return p if p.is_absolute() else Path(manifest_path).resolve().parent / p


def _split_tail(data: bytes) -> tuple[bytes, bytes]:
    """(complete part, torn tail): the tail is whatever follows the last newline."""
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]


def read_manifest(
    path: str | Path, *, repair: bool = False, validate: bool = True, missing_ok: bool = False
) -> list[dict[str, Any]]:
    """Read a manifest's rows.

    A torn last line (no trailing newline, or undecodable JSON on the last line) is what a crash in the middle
    of an append leaves: it is ignored with a warning, and cut off the file when ``repair`` is true.

    Args:
        path: the ``.jsonl`` file.
        repair: truncate a torn last line in place.
        validate: check every row with :func:`validate_manifest_row`.
        missing_ok: return ``[]`` for a missing file instead of raising.

    Returns:
        The rows, in file order.

    Raises:
        SimGapInputError: missing/unreadable file, or an invalid row before the last line (naming ``path:line``).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        if missing_ok:
            return []
        raise SimGapInputError(f"{p}: manifest not found") from exc
    except OSError as exc:
        raise SimGapInputError(f"{p}: cannot read manifest ({exc.strerror or exc})") from exc
    rows, torn = read_manifest_bytes(data, where=str(p), validate=validate)
    if torn:
        _log.warning("%s: ignoring a torn last line (%d bytes) left by an interrupted write", p, torn)
        if repair:
            _truncate(p, len(data) - torn)
    return rows


def read_manifest_bytes(
    data: bytes, *, where: str = "manifest", validate: bool = True, tolerate_torn: bool = True
) -> tuple[list[dict[str, Any]], int]:
    """Decode a manifest's bytes (see :func:`read_manifest`); nothing is written.

    Args:
        data: the file's contents.
        where: how to name the file in error messages.
        validate: check every row with :func:`validate_manifest_row`.
        tolerate_torn: ignore a torn last line (else it is an error).

    Returns:
        (rows, length in bytes of the torn tail to cut; 0 when intact).

    Raises:
        SimGapInputError: an invalid row before the last line, a line nested too deeply, or a torn tail when not
            tolerated.
    """
    good, tail = _split_tail(data)
    lines = good.split(b"\n")[:-1] if good else []
    rows: list[dict[str, Any]] = []
    torn = len(tail) > 0
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except RecursionError as exc:
            raise SimGapInputError(f"{where}:{i}: invalid JSON (nested too deeply)") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if i == len(lines) and not torn:
                # A newline-terminated but undecodable last line: also the remains of an interrupted write.
                torn = True
                good = good[: len(good) - len(raw) - 1]
                break
            raise SimGapInputError(f"{where}:{i}: invalid JSON ({exc})") from exc
        rows.append(validate_manifest_row(row, where=f"{where}:{i}") if validate else row)
    if torn and not tolerate_torn:
        raise SimGapInputError(f"{where}: the last line is incomplete")
    return rows, (len(data) - len(good)) if torn else 0


def repair_manifest(path: str | Path) -> int:
    """Cut a torn last line off a manifest; returns the number of bytes removed (0 when intact or missing)."""
    p = Path(path)
    if not p.exists():
        return 0
    before = p.stat().st_size
    read_manifest(p, repair=True, validate=False)
    return before - p.stat().st_size


def _truncate(p: Path, size: int) -> None:
    try:
        with open(p, "r+b") as fh:
            fh.truncate(size)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise ExportError(f"cannot repair manifest {p}: {exc.strerror or exc}") from exc


class ManifestWriter:
    """Append rows to a JSON Lines manifest, one durable line at a time.

    Opening cuts a torn last line off an existing file. :meth:`append` validates the row, writes the complete
    line with one ``os.write`` on an ``O_APPEND`` descriptor and fsyncs; if the write fails (full disk, I/O
    error) the file is truncated back to its previous length and :class:`~simgap_ext.errors.ExportError` is
    raised, so the manifest never holds a partial line.

    Args:
        path: the ``.jsonl`` file (created with its parent directory when missing).
        validate: validate rows before writing.
        repair: cut a torn last line on opening (the run directory owner passes False after proving it is its own).
    """

    def __init__(self, path: str | Path, *, validate: bool = True, repair: bool = True) -> None:
        self.path = Path(path)
        self.validate = validate
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if repair:
                repair_manifest(self.path)
            # O_NOFOLLOW: appending through a symlink would change a file outside the run directory.
            self._fd: int | None = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
            )
        except ExportError:
            raise
        except OSError as exc:
            raise ExportError(f"{os_error_reason(exc)} opening manifest {self.path}") from exc

    def append(self, row: Mapping[str, Any]) -> None:
        """Validate and durably append one row.

        Raises:
            SimGapInputError: an invalid row (nothing written).
            ExportError: the write failed; the file is left as it was before the call.
        """
        if self._fd is None:
            raise ExportError(f"manifest {self.path} is closed")
        if self.validate:
            row = validate_manifest_row(row, where=f"row for {self.path}")
        line = (json.dumps(row, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(line)
            while view:
                n = os.write(self._fd, view)
                if n <= 0:
                    raise OSError(errno.EIO, "short write")
                view = view[n:]
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, start)
                os.fsync(self._fd)
            except OSError:
                _log.error("could not truncate %s after a failed write; its last line may be torn", self.path)
            raise ExportError(f"{os_error_reason(exc)} writing manifest {self.path}") from exc

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net only
        try:
            self.close()
        except Exception:
            pass
