"""Export of accepted frames in SemanticKITTI layout: ``velodyne/NNNNNN.bin``, ``labels/NNNNNN.label``,
``label_map.yaml``, each file written atomically (temp file in the same directory, fsync, rename).

The exporter only writes files; the caller (:class:`~simgap_ext.pipeline.attempt.AttemptRecorder`) records the
export as pending first and appends the manifest row after :meth:`Exporter.export` returns, so a file without a
manifest row is an orphan of a crash that :meth:`~simgap_ext.pipeline.run_dir.RunDir.find_leftovers` can prove.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..data.label_map import LABEL_MAP_FILENAME, read_label_map, write_label_map
from ..data.semantickitti import write_semantickitti_scan
from ..errors import SimGapInputError
from ..frame import id_to_class, validate_frame

__all__ = ["Exporter"]

_log = logging.getLogger(__name__)


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
