"""Export of accepted frames in SemanticKITTI layout: ``velodyne/NNNNNN.bin``, ``labels/NNNNNN.label``,
``label_map.yaml``, each file written atomically (temp file in the same directory, fsync, rename).

The exporter only writes files; the caller appends the manifest row after :meth:`Exporter.export` returns, so a
file without a manifest row is an orphan of a crash and :meth:`Exporter.remove_orphans` deletes it on resume.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..data.label_map import LABEL_MAP_FILENAME, read_label_map, write_label_map
from ..data.semantickitti import write_semantickitti_scan
from ..errors import ExportError, SimGapInputError
from ..frame import id_to_class, validate_frame

__all__ = ["Exporter"]

_log = logging.getLogger(__name__)

_SCAN_RE = re.compile(r"^(\d{6})\.(bin|label)$")
# atomic_write_bytes' temporaries: ".<name>.<random>.tmp"
_TMP_RE = re.compile(r"^\.(\d{6}\.(bin|label)|label_map\.yaml|run\.json|bank\.npz|report\.html)\..*\.tmp$")


class Exporter:
    """Write accepted frames into one SemanticKITTI sequence directory.

    Args:
        out_dir: the export root (``velodyne/``, ``labels/`` and ``label_map.yaml`` go here).
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.label_map_path = self.out_dir / LABEL_MAP_FILENAME
        self._labels: dict[int, str] = {}
        if self.label_map_path.is_file():
            self._labels = read_label_map(self.label_map_path)

    @property
    def id_to_labels(self) -> dict[int, str]:
        """Semantic id -> class name of everything exported so far (what ``label_map.yaml`` holds)."""
        return dict(self._labels)

    def relative(self, path: Path) -> str:
        """``path`` relative to the export root, POSIX separators (what manifest rows store)."""
        return Path(path).relative_to(self.out_dir).as_posix()

    def export(self, frame: Mapping[str, Any], index: int) -> tuple[Path, Path]:
        """Write one frame as scan ``index``.

        ``label_map.yaml`` is rewritten first when the frame brings new semantic ids, so a scan on disk never
        holds an id its label map lacks.

        Args:
            frame: a frame dict (validated here).
            index: the scan number (six digits in the file names).

        Returns:
            (bin_path, label_path), absolute.

        Raises:
            SimGapInputError: invalid frame, or a semantic id whose name differs from the one already exported.
            ExportError: a write failed (full disk, unwritable directory); nothing partial is left behind.
        """
        f = validate_frame(frame)
        names = id_to_class(f)
        merged = dict(self._labels)
        for sid, name in names.items():
            if sid in merged and merged[sid] != name:
                raise SimGapInputError(
                    f"frame {f.get('frame_id')}: semantic id {sid} is {name!r} but the export maps it to "
                    f"{merged[sid]!r} ({self.label_map_path})"
                )
            merged[sid] = name
        if merged != self._labels or not self.label_map_path.exists():
            write_label_map(self.label_map_path, merged)
            self._labels = merged
        return write_semantickitti_scan(self.out_dir, index, f)

    def existing_indices(self) -> set[int]:
        """Scan numbers that have a ``.bin`` or a ``.label`` file on disk."""
        out: set[int] = set()
        for sub in ("velodyne", "labels"):
            d = self.out_dir / sub
            if d.is_dir():
                for p in d.iterdir():
                    m = _SCAN_RE.match(p.name)
                    if m:
                        out.add(int(m.group(1)))
        return out

    def remove_orphans(self, keep: Iterable[int]) -> list[Path]:
        """Delete scan/label files whose index is not in ``keep`` and temporaries of interrupted writes.

        Args:
            keep: the indices the manifest records as exported.

        Returns:
            The paths removed.

        Raises:
            ExportError: a file could not be removed.
        """
        keep = set(int(i) for i in keep)
        removed: list[Path] = []
        candidates: list[Path] = []
        for sub in ("velodyne", "labels"):
            d = self.out_dir / sub
            if d.is_dir():
                candidates.extend(sorted(d.iterdir()))
        if self.out_dir.is_dir():
            candidates.extend(p for p in sorted(self.out_dir.iterdir()) if _TMP_RE.match(p.name))
        for p in candidates:
            m = _SCAN_RE.match(p.name)
            orphan = (m is not None and int(m.group(1)) not in keep) or bool(_TMP_RE.match(p.name))
            if orphan and p.is_file():
                try:
                    p.unlink()
                except OSError as exc:
                    raise ExportError(f"cannot remove orphan file {p}: {exc.strerror or exc}") from exc
                removed.append(p)
        if removed:
            _log.info("removed %d orphan file(s) left by an interrupted run in %s", len(removed), self.out_dir)
        return removed
