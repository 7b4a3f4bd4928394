"""RTX LiDAR object ids: per-point id buffers and the ``StableIdMap`` annotator's raw bytes, read with NumPy only.

The layouts follow the public Isaac Sim sources (isaac-sim/IsaacSim):

* Isaac Sim 4.5 / 5.0: ``objectId`` is one ``uint32`` per point
  (``source/extensions/isaacsim.sensors.rtx/nodes/OgnIsaacCreateRTXLidarScanBuffer.cpp`` at ``v5.0.0``:
  ``DeviceBufferBase<uint32_t> objectIdBuffers``).
* Isaac Sim 5.1 and 6.x: ``objectId`` / GenericModelOutput ``objId`` is a 128-bit *stable id* per point, 16 bytes
  little-endian (same file at ``v5.1.0``: ``resize(m_maxPoints * 16); // object id is stride 16``; the annotator
  hands it over as ``uint32`` words, four per point, since ``objectIdDataType`` is ``uint``). Isaac Sim decodes it
  with ``LidarRtx.get_object_ids`` (``isaacsim.sensors.rtx/python/impl/lidar_rtx.py`` at ``v5.1.0``) and
  ``parse_object_ids`` (``isaacsim.sensors.experimental.rtx/python/impl/utils.py`` at ``v6.0.1``).
* ``StableIdMap`` (needs ``--/rtx-transient/stableIds/enabled=true``): ``num_entries`` records of six
  little-endian ``uint32`` -- 128-bit stable id (4 words), label length, label byte offset -- then the UTF-8 prim
  paths, and the entry count in the buffer's last 4 bytes (``LidarRtx.decode_stable_id_mapping`` at ``v5.1.0``,
  ``parse_stable_id_map_data`` at ``v6.0.1``).
* The renderer puts a sub-mesh / primitive index in a stable id's upper 32 bits, and the map only registers the
  per-instance id (``parse_stable_id_map_data`` docstring at ``v6.0.1``): :func:`lookup_stable_id` therefore falls
  back to the id with its upper 32 bits cleared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import SimGapInputError

__all__ = ["decode_object_ids", "parse_stable_id_map", "lookup_stable_id", "STABLE_ID_BYTES"]

#: Bytes per point of a 128-bit stable id.
STABLE_ID_BYTES = 16
_ENTRY_WORDS = 6  # stable id (4 x uint32), label length, label offset
_BASE_ID_MASK = (1 << 96) - 1


def decode_object_ids(raw: Any, n: int, what: str) -> tuple[np.ndarray, list[int], bool]:
    """Per-point object ids -> dense ids, vectorised (a Python int per point would cost ~1 us each).

    Args:
        raw: ``(N,)`` integer ids (4.5 / 5.0 ``uint32``), or 128-bit stable ids as ``(N * 16,)`` / ``(N, 16)``
            ``uint8``, ``(N * 4,)`` / ``(N, 4)`` ``uint32`` or ``(N, 2)`` ``uint64`` little-endian words, or ``(N,)``
            Python ints (object array).
        n: number of points.
        what: how to name the payload in errors.

    Returns:
        ``(dense, ids, wide)``: ``dense`` (N,) uint64 with 0 for id 0, else 1..K in ascending id order; ``ids`` the
        K non-zero ids as Python ints, ascending (``dense == i + 1`` <=> id ``ids[i]``); ``wide`` True for 128-bit
        stable ids.

    Raises:
        SimGapInputError: a buffer whose size fits neither one id nor 16 bytes per point.
    """
    arr = np.asarray(raw)
    if arr.ndim == 1 and arr.shape[0] == n and arr.dtype.kind in "iu":
        uniq, inverse = np.unique(arr, return_inverse=True)
        return _dense(uniq.tolist(), inverse, n), [int(u) for u in uniq.tolist() if u != 0], False
    if arr.ndim == 1 and arr.shape[0] == n and arr.dtype.kind == "O":
        values = [int(v) for v in arr.tolist()]
        ints = sorted(set(values))
        pos = {v: i for i, v in enumerate(ints)}
        inverse = np.array([pos[v] for v in values], dtype=np.int64)
        return _dense(ints, inverse, n), [v for v in ints if v != 0], max(ints, default=0) >= 1 << 64
    if arr.dtype.kind not in "iu" or arr.nbytes != n * STABLE_ID_BYTES or (n == 0 and arr.size):
        raise SimGapInputError(
            f"{what}: object ids of shape {arr.shape} dtype {arr.dtype} fit neither one id nor "
            f"{STABLE_ID_BYTES} bytes per point for {n} points"
        )
    if n == 0:
        return np.zeros(0, np.uint64), [], True
    # Little-endian 64-bit words; lexsort's last key is the primary one, so the most significant word goes last
    # and the sort is the integer order (np.unique(axis=0) does the same several times slower).
    words = np.ascontiguousarray(arr).view(np.uint8).reshape(n, STABLE_ID_BYTES).view("<u8")
    order = np.lexsort(words.T)
    ranked = words[order]
    first = np.ones(n, dtype=bool)
    first[1:] = np.any(ranked[1:] != ranked[:-1], axis=1)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    ints = [int(lo) | (int(hi) << 64) for lo, hi in ranked[first].tolist()]
    return _dense(ints, inverse, n), [v for v in ints if v != 0], True


def _dense(sorted_ids: list[int], inverse: np.ndarray, n: int) -> np.ndarray:
    if not n:
        return np.zeros(0, np.uint64)
    offset = 0 if sorted_ids and sorted_ids[0] == 0 else 1
    return (np.arange(len(sorted_ids), dtype=np.uint64) + np.uint64(offset))[np.asarray(inverse).reshape(-1)]


def parse_stable_id_map(raw: Any) -> dict[int, str]:
    """The ``StableIdMap`` annotator's raw buffer -> ``{128-bit stable id: prim path}``.

    Args:
        raw: the buffer as the annotator returns it (``uint8`` array, ``bytes``, or a mapping holding it under
            ``"data"``); an already parsed ``{id: path}`` mapping is returned with int keys.

    Returns:
        stable id -> prim path (trailing whitespace / NULs stripped, as Isaac Sim's parser does).

    Raises:
        SimGapInputError: a buffer too short for its entry count, or a label outside the buffer / not UTF-8.
    """
    if isinstance(raw, Mapping):
        if "data" in raw and not all(isinstance(k, int) for k in raw):
            return parse_stable_id_map(raw["data"])
        return {int(k): str(v) for k, v in raw.items()}
    buf = bytes(raw) if isinstance(raw, bytes | bytearray | memoryview) else np.asarray(raw).tobytes()
    if not buf:
        return {}
    if len(buf) < 4:
        raise SimGapInputError(f"StableIdMap: {len(buf)}-byte buffer is shorter than its 4-byte entry count")
    count = int.from_bytes(buf[-4:], "little")
    table = count * _ENTRY_WORDS * 4
    if table + 4 > len(buf):
        raise SimGapInputError(f"StableIdMap: {count} entries need {table + 4} bytes, the buffer has {len(buf)}")
    entries = np.frombuffer(buf[:table], "<u4").reshape(count, _ENTRY_WORDS)
    out: dict[int, str] = {}
    for row in entries.tolist():
        sid = row[0] | (row[1] << 32) | (row[2] << 64) | (row[3] << 96)
        length, offset = row[4], row[5]
        if offset + length > len(buf):
            raise SimGapInputError(
                f"StableIdMap: entry {sid} label at bytes {offset}..{offset + length} lies outside the "
                f"{len(buf)}-byte buffer"
            )
        try:
            out[sid] = buf[offset : offset + length].decode("utf-8").rstrip().rstrip("\x00")
        except UnicodeDecodeError as exc:
            raise SimGapInputError(f"StableIdMap: entry {sid} label is not UTF-8 ({exc})") from None
    return out


def lookup_stable_id(stable_id_map: Mapping[int, str] | None, stable_id: int) -> str | None:
    """The prim path of a stable id: the exact id, else its per-instance base id (upper 32 bits cleared)."""
    if not stable_id_map:
        return None
    path = stable_id_map.get(stable_id)
    if path is None and stable_id >> 96:
        path = stable_id_map.get(stable_id & _BASE_ID_MASK)
    return path
