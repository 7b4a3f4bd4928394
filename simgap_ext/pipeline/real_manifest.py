"""Manifests of real data: one ``domain: real`` row per scan of a SemanticKITTI sequence (or any scan directory).

Real rows carry the same per-class point and instance counts as synthetic rows, so that :mod:`.mixing` can
bucket real and synthetic samples by the same class frequencies. They have no gate scores.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data.manifest import ManifestWriter, make_row
from ..data.scans import iter_scans, list_scans, scan_name
from ..data.semantickitti import find_label_file
from ..errors import SimGapInputError
from ..frame import id_to_class

__all__ = ["frame_class_counts", "build_real_manifest"]

_log = logging.getLogger(__name__)


def frame_class_counts(frame: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """Per-class point counts and instance counts (distinct non-zero instance ids) of a validated frame.

    Returns:
        (class -> points, class -> instances), classes with at least one point only.
    """
    names = id_to_class(frame)
    sem = frame["info"]["pointSemantic"]
    ins = frame["info"]["pointInstance"]
    points: dict[str, int] = {}
    instances: dict[str, int] = {}
    for sid in np.unique(sem).tolist():
        name = names[int(sid)]
        mask = sem == sid
        points[name] = points.get(name, 0) + int(mask.sum())
        ids = np.unique(ins[mask])
        instances[name] = instances.get(name, 0) + int((ids != 0).sum())
    return points, instances


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def build_real_manifest(
    real_dir: str | Path, out_path: str | Path, *, sensor: str = "unknown", **read: Any
) -> list[dict[str, Any]]:
    """Write a manifest of every scan under ``real_dir``.

    Args:
        real_dir: a SemanticKITTI sequence directory or a directory/file of scans (see
            :func:`~simgap_ext.data.iter_scans`).
        out_path: the ``.jsonl`` to write (replaced if it exists).
        sensor: sensor profile name recorded in every row.
        **read: reader options for :func:`~simgap_ext.data.iter_scans` (``label_map``, ``layout``, ``columns``).

    Returns:
        The rows written (paths relative to ``out_path``'s directory).

    Raises:
        SimGapInputError: unreadable or empty real data.
        ExportError: the manifest could not be written.
    """
    out = Path(out_path)
    files = list_scans(real_dir)
    base = out.resolve().parent
    rows: list[dict[str, Any]] = []
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        tmp.unlink()
    try:
        with ManifestWriter(tmp) as writer:
            for i, ((name, frame), f) in enumerate(
                zip(iter_scans(real_dir, sensor=sensor, **read), files, strict=True)
            ):
                if name != scan_name(f):  # pragma: no cover - both come from list_scans' order
                    raise SimGapInputError(f"{real_dir}: scan order mismatch at {name} / {f.name}")
                points, instances = frame_class_counts(frame)
                label = find_label_file(f) if f.suffix.lower() == ".bin" else None
                row = make_row(
                    domain="real",
                    sensor=sensor,
                    decision="accepted",
                    path=_rel(f, base),
                    label_path=_rel(label, base) if label is not None else None,
                    index=i,
                    seed=None,
                    attempt=0,
                    frame_id=int(frame.get("frame_id", i)),
                    class_points=points,
                    class_instances=instances,
                    name=name,
                )
                writer.append(row)
                rows.append(row)
    except BaseException:
        # A corrupt scan midway: the previous manifest (if any) stays as it was, and no partial file is left.
        tmp.unlink(missing_ok=True)
        raise
    # The whole manifest appears at once: a reader never sees half a real manifest.
    os.replace(tmp, out)
    _log.info("wrote %d real rows to %s", len(rows), out)
    return rows
