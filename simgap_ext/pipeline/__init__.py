"""Batch generation pipeline: randomize -> render -> gate -> export / re-randomize (docs/pipeline.md).

- :class:`AcceptanceStats` - the one observable per-class model (CLI table, HTML report, Kit panel);
- :class:`Exporter` - SemanticKITTI export with atomic writes and orphan clean-up;
- :class:`GenerationRunner` - the crash-safe, resumable generation loop with tail re-randomization;
- :class:`RunDir` - the one owner of a run directory's files (lock, proof of ownership, clean-up; ``run_dir``);
- :func:`~simgap_ext.pipeline.assembly.assemble_run` - settings -> bank, gate, runner (``assembly``);
- :func:`mix_manifests` / :func:`mix_rows` - stratified real:synthetic train/val mixing;
- :func:`build_real_manifest` - a manifest of real scans;
- :func:`write_report` - the self-contained HTML report (matplotlib imported only when called).

Manifests themselves live in :mod:`simgap_ext.data.manifest`. See ``docs/pipeline.md``.
"""

from __future__ import annotations

from .exporter import Exporter
from .mixing import BUCKETS, MixResult, class_frequencies, frequency_buckets, mix_manifests, mix_rows, sample_bucket
from .real_manifest import build_real_manifest, frame_class_counts
from .run_dir import RunDir, RunDirBusyError, check_schedule
from .runner import (
    MANIFEST_NAME,
    RUN_CONFIG_NAME,
    FocusPlan,
    GenerationRunner,
    GenerationSummary,
    TailFocusPlan,
    derive_seed,
    fingerprint_file,
)
from .stats import AcceptanceStats, ClassRow, TimelinePoint, decision_label

__all__ = [
    "AcceptanceStats",
    "ClassRow",
    "TimelinePoint",
    "decision_label",
    "Exporter",
    "FocusPlan",
    "TailFocusPlan",
    "GenerationRunner",
    "GenerationSummary",
    "derive_seed",
    "fingerprint_file",
    "MANIFEST_NAME",
    "RUN_CONFIG_NAME",
    "RunDir",
    "RunDirBusyError",
    "check_schedule",
    "BUCKETS",
    "MixResult",
    "class_frequencies",
    "frequency_buckets",
    "sample_bucket",
    "mix_rows",
    "mix_manifests",
    "build_real_manifest",
    "frame_class_counts",
    "write_report",
]


def __getattr__(name: str):  # noqa: ANN202 - lazy: the report pulls in matplotlib
    if name == "write_report":
        from .report import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
