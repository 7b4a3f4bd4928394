"""Exceptions shared by every SimGap layer.

Bad input raises :class:`SimGapInputError` (a ``ValueError``) whose message names the offending
file, array or class, so that the CLI can print it as a one-line error and tests can match it.
"""

from __future__ import annotations

__all__ = ["SimGapError", "SimGapInputError", "ReferenceDataError", "ExportError"]


class SimGapError(Exception):
    """Base class of every error SimGap raises on purpose."""


class SimGapInputError(SimGapError, ValueError):
    """Input that cannot be used: NaN/empty clouds, wrong shapes, unknown classes, corrupt files."""


class ReferenceDataError(SimGapError, ValueError):
    """Real reference data that is missing, empty or inconsistent."""


class ExportError(SimGapError, OSError):
    """Writing the export or manifest failed (full disk, unwritable directory); nothing written is corrupted."""
