"""Reading small YAML documents (taxonomy, label maps) without trusting them.

:func:`read_yaml` bounds the file size before reading, and turns every way PyYAML can fail on hostile input
(invalid syntax, deeply nested brackets that exhaust the recursion limit, non-UTF-8 bytes) into one
:class:`~simgap_ext.errors.SimGapInputError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import SimGapInputError

__all__ = ["MAX_YAML_BYTES", "read_yaml"]

#: Label maps and taxonomies are a few kB; anything above this is not one.
MAX_YAML_BYTES = 4 * 1024 * 1024


def read_yaml(path: str | Path, *, what: str = "YAML file", max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Parse a YAML file with ``yaml.safe_load``.

    Args:
        path: the file.
        what: what the file is, for error messages (``"label map"``).
        max_bytes: refuse larger files before reading them.

    Returns:
        The parsed document.

    Raises:
        SimGapInputError: missing, unreadable, too large, not UTF-8, invalid or too deeply nested YAML.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise SimGapInputError(f"{p}: {what} is {size} bytes, more than the {max_bytes} a {what} can be")
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{p}: {what} not found") from exc
    except IsADirectoryError as exc:
        raise SimGapInputError(f"{p}: is a directory, expected a {what}") from exc
    except OSError as exc:
        raise SimGapInputError(f"{p}: cannot read {what} ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise SimGapInputError(f"{p}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SimGapInputError(f"{p}: invalid YAML in {what} ({str(exc).splitlines()[0]})") from exc
    except RecursionError as exc:
        raise SimGapInputError(f"{p}: {what} is nested too deeply to be a {what}") from exc
