"""Which of the gate's frame statistics a render worker process leaves to the main process, chosen so that the
two processes take about equally long per frame (the slower one sets the pipeline's pace).

The worker renders and computes the statistics that depend on the frame alone; the main process gates, records and
computes the statistics parts the worker was told to skip (:data:`~simgap_ext.gate.frame_stats.DEFERRABLE`).
Where a part is computed never changes its value, so the choice only moves time, never a decision or a byte of the
run directory. The right split depends on the sensor, the scene and the gate's configuration (e.g. whether the
semantic quarantine has started scoring), so it is measured, not fixed: :class:`StatsBalancer` hill-climbs on the
number of deferred parts, comparing the worker's time per frame with the main process's busy time per frame.
The last step leaves all the statistics to the main process (:data:`ALL_STATS`, :class:`WorkerStats`), for when
the worker is still the slower one with every other part deferred.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["StatsBalancer", "WorkerStats", "ALL_STATS"]

#: The last part a worker can leave to the main process: all its statistics (the worker then only renders).
ALL_STATS = "all"

#: Frames observed with one setting before it is judged (fewer: one slow frame would flip it).
_MIN_OBSERVATIONS = 2


class StatsBalancer:
    """Choose how many of ``parts`` (in order) the worker skips.

    Args:
        parts: deferrable statistics parts, the first ones deferred first.
        deferred: how many are deferred at first (0 <= deferred <= len(parts)).
        adapt: move ``deferred`` from the observed times; False keeps it fixed.

    Attributes:
        deferred: how many of ``parts`` are deferred now.
    """

    def __init__(self, parts: Sequence[str], *, deferred: int = 0, adapt: bool = True) -> None:
        self.parts = tuple(parts)
        if not 0 <= int(deferred) <= len(self.parts):
            raise ValueError(f"deferred must lie in [0, {len(self.parts)}], got {deferred}")
        self.deferred = int(deferred)
        self.adapt = bool(adapt)
        self._seen: dict[int, list[tuple[float, float]]] = {}

    def skip(self) -> tuple[str, ...]:
        """The parts the worker leaves out of its next frame's statistics."""
        return self.parts[: self.deferred]

    def observe(self, worker_s: float, main_s: float, deferred: int) -> None:
        """Record one frame: the worker's seconds (render and its statistics), the main process's busy seconds
        (gate, deferred statistics, recording; not its waits for the worker), with ``deferred`` parts deferred."""
        self._seen.setdefault(int(deferred), []).append((float(worker_s), float(main_s)))
        if deferred != self.deferred or not self.adapt:
            return  # a frame submitted before the last change
        seen = self._seen[self.deferred]
        if len(seen) < _MIN_OBSERVATIONS:
            return
        worker, main = self._means(self.deferred)
        here = max(worker, main)
        step = 1 if worker > main else -1
        nxt = self.deferred + step
        if not 0 <= nxt <= len(self.parts):
            return
        if nxt in self._seen and len(self._seen[nxt]) >= _MIN_OBSERVATIONS and max(self._means(nxt)) >= here:
            return  # tried: no faster there
        self.deferred = nxt

    def _means(self, deferred: int) -> tuple[float, float]:
        recent = self._seen[deferred][-4:]  # the scene mix drifts over a run: recent frames count
        return statistics.fmean(w for w, _ in recent), statistics.fmean(m for _, m in recent)


class WorkerStats:
    """What a render worker computes beside the render: ``spec(frame, skip)``, or nothing (``None``) when ``skip``
    holds :data:`ALL_STATS` (the main process then computes the whole statistics, as in a run in order).

    Args:
        spec: the gate's picklable ``(frame, skip) -> FrameStats`` (:meth:`~simgap_ext.gate.FrameGate.stats_spec`).
    """

    def __init__(self, spec) -> None:
        self.spec = spec

    def __call__(self, frame, skip: Sequence[str] = ()):
        if ALL_STATS in skip:
            return None
        return self.spec(frame, tuple(skip))
