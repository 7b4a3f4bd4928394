"""A minimal TOML writer for sensor profiles (strings, booleans, numbers, nested arrays and tables).

Python's ``tomllib`` only reads TOML; the project has no TOML writer dependency, and a tuned profile holds only
these value kinds. Floats are written with ``repr`` so that they read back bit for bit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ..errors import SimGapInputError

__all__ = ["dumps"]


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise SimGapInputError(f"cannot write a non-finite number ({v}) to TOML")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise SimGapInputError(f"cannot write {type(v).__name__} to TOML")


def dumps(doc: Mapping[str, Any], *, header: str = "") -> str:
    """Serialise a nested mapping: plain keys first, then one ``[table]`` section per nested mapping."""
    lines = [f"# {h}" if h else "#" for h in header.splitlines()] if header else []

    def emit(table: Mapping[str, Any], path: list[str]) -> None:
        subs = []
        if path:
            lines.append("")
            lines.append("[" + ".".join(path) + "]")
        for k, v in table.items():
            if not isinstance(k, str) or not k.replace("_", "").replace("-", "").isalnum():
                raise SimGapInputError(f"cannot write key {k!r} to TOML")
            if isinstance(v, Mapping):
                subs.append((k, v))
            elif v is not None:
                lines.append(f"{k} = {_value(v)}")
        for k, v in subs:
            emit(v, [*path, k])

    emit(doc, [])
    return "\n".join(lines) + "\n"
