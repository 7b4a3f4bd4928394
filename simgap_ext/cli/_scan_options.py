"""The options every command that reads real scans shares: ``--label-map``, ``--layout``, ``--columns``.

A command adds them with :func:`add_scan_options` and passes ``**scan_options(args)`` to
:func:`simgap_ext.data.iter_scans` (or any reader taking ``label_map``/``layout``/``columns``), so the options mean
the same everywhere. The label map is loaded here, once, so that a misspelt name fails before any scan is read.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_scan_options", "scan_options"]


def add_scan_options(parser: argparse.ArgumentParser, *, what: str = "real scans") -> None:
    """Add ``--label-map``, ``--layout`` and ``--columns`` to ``parser``.

    Args:
        parser: the sub-command's parser.
        what: which input the options apply to, for the help text (``"real scans"``).
    """
    from ..data.dataset_label_maps import available_label_maps
    from ..data.layouts import LAYOUTS

    g = parser.add_argument_group(f"reading {what}")
    g.add_argument(
        "--label-map",
        metavar="NAME|FILE",
        default=None,
        help=f"map the {what}' class ids onto SimGap's taxonomy with a shipped map "
        f"({', '.join(available_label_maps())}) or a YAML file (default: names in or beside the files, "
        "else the detected layout's map)",
    )
    g.add_argument(
        "--layout",
        choices=LAYOUTS,
        default=None,
        help=f"layout of the {what} (default: detected per file, e.g. a .label beside a .bin -> semantickitti)",
    )
    g.add_argument(
        "--columns",
        metavar="x,y,z,...",
        default=None,
        help="float32 columns of raw .bin scans in file order, from x,y,z,intensity,ring,time,_ "
        "(default: x,y,z,intensity; nuScenes .pcd.bin: x,y,z,intensity,ring)",
    )


def scan_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reader keyword arguments for the options :func:`add_scan_options` added (validated, map loaded).

    Raises:
        SimGapInputError: an unknown label map, an unreadable map file, or a bad ``--columns`` value.
    """
    from ..data.dataset_label_maps import load_label_map
    from ..data.raw_bin import parse_columns

    label_map = getattr(args, "label_map", None)
    columns = getattr(args, "columns", None)
    return {
        "label_map": None if label_map is None else load_label_map(label_map),
        "layout": getattr(args, "layout", None),
        "columns": None if columns is None else parse_columns(columns),
    }
