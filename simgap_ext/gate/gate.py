"""FrameGate: the per-frame DoGSS-PCL decision (sanity -> geometry per class and scene -> semantic quarantine).

Order of checks, each with reasons a person can read:

1. sanity (frame not scored when it fails; ``status="invalid"``): empty frame, object classes whose instance
   ids are all 0 (Isaac Sim LiDAR object ids missing), accumulated/duplicated points, wrong sensor;
2. classes without a real reference: rejected or ignored (``unknown_class``);
3. geometry: each object class's G (:mod:`simgap_ext.gate.geometric`) >= ``g_threshold`` and the scene G
   >= ``scene_threshold``;
4. semantics: a frame that passed 1-3 feeds its instance embeddings into the :class:`SemanticQuarantine`;
   if any of its classes is (now) quarantined the frame is held back (``status="quarantined"``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ..frame import validate_frame
from .bank import ReferenceBank, sensor_geometry
from .config import GateConfig, load_gate_config
from .decision import ClassDecision, GateDecision
from .frame_stats import FrameStats, _sensor_points, finish_frame_stats, frame_stats
from .geometric import (
    MIN_ROUGHNESS_SAMPLES,
    ComponentScore,
    best_exemplar_matches,
    object_components,
    scene_components,
    weighted_g,
)
from .joint import JointTests
from .missing import HiddenClass, hidden_classes
from .quarantine import SemanticQuarantine
from .segments import SegmentResult, SegmentTests, segment_descriptors

__all__ = ["FrameGate", "FrameStatsSpec", "MIN_CLASS_FRAMES"]

#: Real frames that must hold a class before it is judged on its own statistics: its d_max values are calibrated
#: leaving one of them out, and fewer than 3 leave a single real-vs-real distance per component.
MIN_CLASS_FRAMES = 3
#: With ``strict_components``, a component scoring below this fails its class (or the scene) whatever the weighted
#: mean: its distance is beyond half its d_max, i.e. 3x the calibrated real-vs-real value with the default
#: margin 1.5 and g_threshold 0.75. One statistic that far outside real variation is evidence enough; a weighted
#: mean over six components dilutes it (a boxified vehicle: density at 0.76 d_max, G 0.78). Failing below
#: g_threshold instead (1.5x that value) rejected 40 % of real MCD scans (with the empirical quantiles of then).
STRICT_FLOOR = 0.5
#: Points a class needs in a frame before its own statistics (roughness, height, ring continuity) are judged.
MIN_JUDGED_POINTS = MIN_ROUGHNESS_SAMPLES

log = logging.getLogger(__name__)
# Classes that carry no meaning of their own: never judged missing.
_IGNORED_CLASSES = ("unlabeled", "unlabelled")


@dataclass(frozen=True)
class FrameStatsSpec:
    """A picklable ``frame -> FrameStats``: exactly what :meth:`FrameGate.evaluate` computes for a frame (validation
    and the bank-level roll-up included). It depends on the frame alone, so a render worker process can compute it
    beside the render (:class:`~simgap_ext.pipeline.render_worker.ProcessRenderPrefetcher`).
    """

    vertical_angles_deg: tuple[float, ...] | None
    horizontal_resolution: int | None
    reference_columns: int | None
    background_classes: tuple[str, ...]
    duplicate_tolerance: float
    roll_up: bool

    def prepare(self, frame: Mapping[str, Any]) -> Mapping[str, Any]:
        """The frame as the gate scores it (validated; rolled up to the bank's class level)."""
        frame = validate_frame(frame)
        if self.roll_up:
            from ..data.taxonomy import roll_up_frame

            frame = roll_up_frame(frame)
        return frame

    def stats(self, prepared: Mapping[str, Any], skip: tuple[str, ...] = ()) -> FrameStats:
        """:class:`FrameStats` of a frame returned by :meth:`prepare`; the ``skip`` parts
        (:data:`~simgap_ext.gate.frame_stats.DEFERRABLE`) are left to :meth:`FrameGate.evaluate`."""
        return frame_stats(
            prepared,
            vertical_angles_deg=self.vertical_angles_deg,
            horizontal_resolution=self.horizontal_resolution,
            reference_columns=self.reference_columns,
            background_classes=self.background_classes,
            duplicate_tolerance=self.duplicate_tolerance,
            skip=skip,
        )

    def __call__(self, frame: Mapping[str, Any], skip: tuple[str, ...] = ()) -> FrameStats:
        return self.stats(self.prepare(frame), skip)


def _warn_old_bank(bank: ReferenceBank, lacks: str) -> None:
    """Log that ``bank`` (an older format) lacks what a gate check needs: ``reference bank <path> (format version N)
    <lacks>; rebuild the bank to check it``."""
    log.warning(
        "reference bank %s (format version %s) %s; rebuild the bank to check it",
        bank.source or "(in memory)",
        bank.meta.get("format_version", "?"),
        lacks,
    )


class FrameGate:
    """Scores frames against a real :class:`ReferenceBank` and decides accept / reject / hold back.

    Args:
        bank: the real reference bank.
        config: thresholds and weights (default: :func:`load_gate_config` of ``config/gate.toml``).
        device: Warp device for the Chamfer distances (``None``: CUDA when available, else CPU).
        quarantine: the semantic quarantine to use (default: one built from ``config`` and the bank's
            embeddings); pass ``False`` to switch the semantic component off.
        backbone: frozen backbone for instance embeddings (default :class:`simgap_ext.metrics.FrozenBackbone`).
            Must be the one the bank was built with.
        parents: class -> parent class of the taxonomy (default: the shipped taxonomy when available). A frame
            class without real exemplars is scored against its nearest ancestor the bank knows, and the decision
            says so.

    Not thread-safe for concurrent :meth:`evaluate` calls (the quarantine window is sequential state).
    """

    def __init__(
        self,
        bank: ReferenceBank,
        config: GateConfig | None = None,
        *,
        device: str | None = None,
        quarantine: SemanticQuarantine | bool | None = None,
        backbone: Any = None,
        parents: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(bank, ReferenceBank):
            raise SimGapInputError(f"FrameGate needs a ReferenceBank, got {type(bank).__name__}")
        self.bank = bank
        self.config = config if config is not None else load_gate_config()
        from .._warp import resolve_device

        self.device = resolve_device(device)
        self.backbone = backbone
        if quarantine is False:
            self.quarantine: SemanticQuarantine | None = None
        elif isinstance(quarantine, SemanticQuarantine):
            self.quarantine = quarantine
        else:
            cfg = self.config
            self.quarantine = SemanticQuarantine(
                cfg.quarantine_window,
                cfg.js_threshold,
                cfg.quarantine_min_samples,
                hysteresis=cfg.js_hysteresis,
                n_bins=cfg.semantic_bins,
                method=cfg.semantic_method,
                n_permutations=cfg.semantic_permutations,
            )
        if self.quarantine is not None:
            feats = bank.class_features()
            if feats:
                self.quarantine.set_reference(feats)
        self._beams, self._columns = sensor_geometry(bank.sensor)
        # The real scans' measured columns per revolution (banks from before it was recorded: the frame's own).
        ref_cols = bank.meta.get("columns")
        self._reference_columns = int(ref_cols) if isinstance(ref_cols, (int, float)) and ref_cols > 0 else None
        self._warned_world = False
        self.parents = dict(parents) if parents is not None else _default_parents()
        # A (coarse) bank of 2 frames still judges the classes both frames hold.
        self._min_class_frames = min(MIN_CLASS_FRAMES, bank.frame_count)
        from .plausibility import VoteIndex

        self._votes = VoteIndex(bank.desc_vals, bank.desc_class, bank.desc_scale())
        if "scene_origin" not in bank.d_max_table:
            log.warning(
                "reference bank %s has no sensor-origin calibration (format version %s, or real frames too sparse "
                "to estimate it): the scene 'origin' component is not scored; rebuild the bank to check it",
                bank.source or "(in memory)",
                bank.meta.get("format_version", "?"),
            )
        self._joint = JointTests(bank, self.config.calibration_margin)
        if self.config.joint_test and not self._joint.available:
            _warn_old_bank(
                bank,
                "has no per-frame deviation vectors: a class moved moderately on several components at once is not "
                "tested jointly (the 'joint' component is absent)",
            )
        self._segments = SegmentTests(bank, self.config.calibration_margin)
        if self.config.segment_test and not self._segments.available:
            _warn_old_bank(
                bank,
                "has no real segment statistics: segments of a class that look like another class (a class "
                "relabelled as another) are not tested (the 'segments' component is absent)",
            )
        elif self.config.segment_test and self._segments.rules == 1:
            _warn_old_bank(
                bank,
                "holds the segment counts of the majority vote only: segments whose own class wins under half their "
                "votes (a relabelled class split between two others) are not counted",
            )
        if "frame_profiles" not in bank.meta:
            _warn_old_bank(
                bank,
                "predates the per-frame vote profiles: a class every real frame holds that is missing from a frame is "
                "not checked for being hidden (relabelled) in another class",
            )

    def _segment_counts(
        self, frame: Mapping[str, Any], stats: FrameStats, ref_of: Mapping[str, str]
    ) -> tuple[np.ndarray, set[str]]:
        """(C, C) segment pair counts of the frame's judged classes, each at its reference class's bank index, and
        the reference classes that have segments."""
        lut = np.full(len(stats.class_list) + 1, -1, np.int64)
        for i, c in enumerate(stats.class_list):
            if c in ref_of:
                lut[i] = self.bank.class_index(ref_of[c])
        cls = lut[stats.class_of_point] if stats.class_of_point.size else np.zeros(0, np.int64)
        desc, seg_class = segment_descriptors(_sensor_points(frame), cls, stats.roughness, skip=(-1,))
        names = self.bank.class_names
        return self._segments.counts(desc, seg_class), {names[i] for i in np.unique(seg_class).tolist()}

    def reference_class(self, class_name: str) -> str | None:
        """The bank class a frame class is compared with: itself when at least ``MIN_CLASS_FRAMES`` real frames
        hold it, else its nearest taxonomy ancestor that does (None when none does)."""
        seen: set[str] = set()
        c: str | None = class_name
        while c is not None and c not in seen:
            if self.bank.class_frames(c) >= self._min_class_frames:
                return c
            seen.add(c)
            c = self.parents.get(c)
        return None

    # ------------------------------------------------------------------------------------------------ public
    def stats_spec(self) -> FrameStatsSpec:
        """The picklable function ``frame -> FrameStats`` of this gate (see :class:`FrameStatsSpec`)."""
        return FrameStatsSpec(
            vertical_angles_deg=self._beams,
            horizontal_resolution=self._columns,
            reference_columns=self._reference_columns,
            background_classes=tuple(self.config.background_classes),
            duplicate_tolerance=float(self.config.duplicate_tolerance),
            roll_up=self.bank.meta.get("class_level") == "scene",
        )

    def stats(self, frame: Mapping[str, Any]) -> FrameStats:
        """The :class:`FrameStats` the gate computes for a (validated) frame."""
        # One definition for both: statistics computed in a render worker must equal the ones computed here.
        return self.stats_spec().stats(frame)

    def segment_test(self, frame: Mapping[str, Any], class_name: str) -> SegmentResult | None:
        """The segment test :meth:`evaluate` runs on one class of a frame, whole: its worst column with the count,
        the real frames' mean, the limit, the level and the count model's tail probability (a decision keeps only the
        ``segments`` score and, on failure, the reason). None where :meth:`evaluate` runs none (test off, a bank
        without segments, a class absent, without a reference or without segments).

        Args:
            frame: a frame in the layout of :mod:`simgap_ext.frame` (rolled up to the bank's level here, as
                :meth:`evaluate` does).
            class_name: a class of the frame.
        """
        if not (self.config.segment_test and self._segments.available):
            return None
        frame = self.stats_spec().prepare(frame)
        stats = self.stats(frame)
        ref_of = {c: r for c in stats.class_points if (r := self.reference_class(c)) is not None}
        if class_name not in ref_of:
            return None
        counts, segmented = self._segment_counts(frame, stats, ref_of)
        ref = ref_of[class_name]
        return self._segments.evaluate(ref, counts[self.bank.class_index(ref)]) if ref in segmented else None

    def evaluate(
        self, frame: Mapping[str, Any], *, update_quarantine: bool = True, stats: FrameStats | None = None
    ) -> GateDecision:
        """Decide on one frame.

        Args:
            frame: a frame in the layout of :mod:`simgap_ext.frame` (docs/data.md) (validated here).
            update_quarantine: feed a geometrically passing frame's embeddings into the quarantine window
                (set False to score without changing state, e.g. for reports).
            stats: this very frame's statistics when already computed by :meth:`stats_spec` (in a render worker;
                parts it skipped are computed here); ``None``: computed here.

        Returns:
            The :class:`GateDecision`.

        Raises:
            SimGapInputError: the frame breaks the frame contract (wrong shapes, NaN points, unknown ids).
        """
        # Judged at the bank's level: a frame labelled finer (car, truck, road) is rolled up like the real scans
        # were (vehicle, ground); frames already at that level (every embedded frame) pass through unchanged.
        frame = self.stats_spec().prepare(frame)
        cfg = self.config
        prov = {
            "frame_id": int(frame.get("frame_id", 0)),
            "seed": int(frame.get("seed", 0)),
            "attempt": int(frame.get("attempt", 0)),
            "sensor": str(frame.get("sensor", "unknown")),
        }
        if frame.get("coordinate_frame") == "world" and frame.get("sensor_origin") is None and not self._warned_world:
            # Ranges, rings and canonical crops are measured from the origin: world-space points without the
            # sensor position give meaningless ring statistics (the Replicator pointcloud annotator emits these).
            log.warning(
                "frame %s has world-space points and no 'sensor_origin': ring and range statistics assume the "
                "sensor at the world origin; pass the sensor position as frame['sensor_origin']",
                prov["frame_id"],
            )
            self._warned_world = True
        if stats is None:
            stats = self.stats(frame)
        else:
            stats = finish_frame_stats(frame, stats)  # the parts a render worker left to this process
        per_class = {
            c: ClassDecision(c, n, stats.class_instances.get(c, 0)) for c, n in sorted(stats.class_points.items())
        }

        # 1. sanity: such frames are artefacts of the capture, scoring them would only produce noise.
        sanity: list[str] = []
        if stats.n_points == 0:
            sanity.append("frame is empty (0 points): nothing was captured")
        sensor = prov["sensor"]
        if cfg.require_same_sensor and self.bank.sensor and sensor not in ("unknown", self.bank.sensor):
            sanity.append(f"frame sensor {sensor!r} differs from the reference bank's sensor {self.bank.sensor!r}")
        for c in stats.zero_instance_classes:
            if self.bank.class_counts.get(c, 0) > 0 or c in self.bank.object_classes:
                per_class[c].passed = False
                per_class[c].reasons.append(f"class {c}: all {stats.class_points[c]} points have instance id 0")
                sanity.append(f"class {c}: all instance ids are 0 (object ids missing from the capture)")
        if stats.duplicate_fraction > cfg.max_duplicate_fraction:
            sanity.append(
                f"{stats.duplicate_fraction:.1%} of points are duplicated (> {cfg.max_duplicate_fraction:.1%}): "
                "accumulated or ghosted capture"
            )
        if sanity:
            return GateDecision(
                accepted=False,
                per_class=per_class,
                scene_g=0.0,
                failing_classes=sorted(c for c, d in per_class.items() if not d.passed),
                reasons=sanity,
                sane=False,
                status="invalid",
                **prov,
            )

        reasons: list[str] = []
        # 2. classes the real reference has never seen: scored against their taxonomy parent when the bank knows
        # one, else rejected (or noted, per unknown_class).
        known = set(self.bank.class_names)
        ref_of: dict[str, str] = {}
        for c, dec in per_class.items():
            ref = self.reference_class(c)
            if ref is not None:
                ref_of[c] = ref
                if ref != c:
                    n_real = self.bank.class_frames(c)
                    dec.reasons.append(
                        f"class {c}: in {n_real} real frame(s) (< {self._min_class_frames}), scored against its parent "
                        f"class {ref}"
                    )
                continue
            if c in known:
                # Too rare in the reference to be judged alone and no ancestor to fall back on: said, not passed
                # silently; its points still count in the scene's class composition.
                dec.reasons.append(
                    f"class {c}: in only {self.bank.class_frames(c)} real frame(s) (< {self._min_class_frames}) and no "
                    "parent class in the reference: judged through the scene composition only"
                )
                continue
            if c not in known:
                msg = f"class {c} has no real reference"
                if c in cfg.background_classes:
                    # Background only enters the scene statistics; a missing one there is no reason to reject.
                    dec.reasons.append(msg + " (background, ignored)")
                elif cfg.unknown_class == "reject":
                    dec.passed = False
                    dec.reasons.append(msg)
                    reasons.append(msg)
                else:
                    dec.reasons.append(msg + " (ignored)")

        # 3. geometry, per object class, then the scene.
        by_class: dict[str, list] = {}
        for crop in stats.crops:
            by_class.setdefault(crop.class_name, []).append(crop)
        # Every class's crops are matched against their exemplars in one batch (one NN pass per frame).
        scored_by_class: dict[str, list] = {}
        near_by_class: dict[str, list[np.ndarray]] = {}
        batch_crops, batch_near, owners = [], [], []
        for c in sorted(ref_of):
            crops = by_class.get(c, [])
            scored = [cr for cr in crops if cr.n_points >= cfg.min_points]
            scored_by_class[c] = scored
            near_by_class[c] = [self.bank.exemplars_near(ref_of[c], cr.range, cfg.k_exemplars) for cr in scored]
            for cr, near in zip(scored, near_by_class[c], strict=True):
                if near.size:
                    batch_crops.append(cr.points)
                    batch_near.append(near)
                    owners.append(c)
        flat = best_exemplar_matches(batch_crops, batch_near, self.bank, device=self.device)
        matches: dict[str, list] = {}
        for c, m in zip(owners, flat, strict=True):
            matches.setdefault(c, []).append(m)
        # Label plausibility: every described point's real neighbours in descriptor space vote for a class.
        votes = self._votes.votes(stats.descriptors)
        described = stats.class_of_point[stats.desc_index] if stats.desc_index.size else np.zeros(0, np.int32)
        seg_counts, segmented = (
            self._segment_counts(frame, stats, ref_of)
            if cfg.segment_test and self._segments.available
            else (None, set())
        )
        for c, scored in scored_by_class.items():
            dec = per_class[c]
            crops = by_class.get(c, [])
            dec.n_scored = len(scored)
            comps = object_components(
                c,
                crops,
                stats,
                self.bank,
                k=cfg.k_exemplars,
                min_points=cfg.min_points,
                device=self.device,
                matches=matches.get(c, []),
                near=near_by_class[c],
                reference_class=ref_of[c],
            )
            comps.update(_plausibility(c, ref_of[c], stats, described, votes, self.bank))
            dec.components = {name: comp.score for name, comp in comps.items()}
            dec.evidence = {name: (comp.distance, comp.d_max) for name, comp in comps.items()}
            dec.g = weighted_g(comps, cfg.object_weights)
            if dec.g is None and dec.n_points < MIN_JUDGED_POINTS:
                # Too few points for any per-class statistic: said so; the points still count in the scene's
                # class composition, which is always scored.
                dec.reasons.append(
                    f"class {c}: {dec.n_points} points (< {MIN_JUDGED_POINTS}), judged through the scene composition"
                )
                continue
            if dec.g is None:
                # Fail closed: a class the gate cannot judge is not a class that passed.
                dec.passed = False
                msg = f"class {c}: not scored (no statistic of it could be compared with the real reference)"
                dec.reasons.append(msg)
                reasons.append(msg)
                continue
            msg = _failure(f"class {c}", dec.g, cfg.g_threshold, comps, cfg.object_weights, cfg.strict_components)
            if msg:
                dec.passed = False
                dec.reasons.append(msg)
                reasons.append(msg)
            # Distances in units of the class's d_max (a density d_max widened for a thin class's sampling error
            # shrinks its distance accordingly, so the joint test does not count that error either).
            joint = (
                self._joint.evaluate(
                    ref_of[c], {n: s.distance * self.bank.class_d_max(ref_of[c], n) / s.d_max for n, s in comps.items()}
                )
                if cfg.joint_test
                else None
            )
            if joint is not None:
                # Weight 0 in G (a test, not a similarity); its d_max puts the limit at STRICT_FLOOR like every
                # component's strict failure point: score < 0.5 exactly when T > limit.
                score = ComponentScore(joint.statistic, joint.limit / (1.0 - STRICT_FLOOR))
                dec.components["joint"] = score.score
                dec.evidence["joint"] = (score.distance, score.d_max)
                if joint.failed:
                    dec.passed = False
                    dec.reasons.append(joint.reason(c))
                    reasons.append(joint.reason(c))
            seg = (
                self._segments.evaluate(ref_of[c], seg_counts[self.bank.class_index(ref_of[c])])
                if seg_counts is not None and ref_of[c] in segmented
                else None
            )
            if seg is not None:
                # A test like the joint one: weight 0 in G, score < 0.5 exactly when the excess passes its limit.
                score = ComponentScore(max(seg.excess, 0.0), seg.limit / (1.0 - STRICT_FLOOR))
                dec.components["segments"] = score.score
                dec.evidence["segments"] = (score.distance, score.d_max)
                if seg.failed:
                    dec.passed = False
                    dec.reasons.append(seg.reason(c))
                    reasons.append(seg.reason(c))

        for hidden in _hidden(per_class, ref_of, stats, described, votes, self.bank, cfg.calibration_quantile):
            dec = per_class[hidden.host_class]
            dec.components["hidden"] = 0.0
            dec.evidence["hidden"] = (hidden.evidence.p_joint, 1.0 - cfg.calibration_quantile)
            dec.passed = False
            dec.reasons.append(hidden.evidence.reason())
            reasons.append(hidden.evidence.reason())

        scene = scene_components(stats, self.bank, ref_of)
        scene_g = weighted_g(scene, cfg.scene_weights)
        scene_scores = {n: s.score for n, s in scene.items()}
        scene_evidence = {n: (s.distance, s.d_max) for n, s in scene.items()}
        if scene_g is None:
            # Never a passing score for a missing one: a scene nothing could be compared for is rejected.
            scene_g = 0.0
            reasons.append("scene: not scored (no scene statistic could be compared with the real reference)")
        else:
            msg = _failure("scene", scene_g, cfg.scene_threshold, scene, cfg.scene_weights, cfg.strict_components)
            if msg:
                reasons.append(msg)

        failing = sorted(c for c, d in per_class.items() if not d.passed)
        geometric_ok = not reasons

        # 4. semantic quarantine.
        quarantined: list[str] = []
        if self.quarantine is not None:
            if geometric_ok and update_quarantine:
                from ..metrics import instance_features

                feats = instance_features(frame, self.backbone, min_points=cfg.min_points)
                present = {c: feats.get(c, np.zeros((0, 0), np.float32)) for c in by_class if c in known}
                self.quarantine.update(present)
            for c, dec in per_class.items():
                state = self.quarantine.state(c)
                dec.js = state.js
                if state.quarantined:
                    dec.quarantined = True
                    dec.passed = False
                    quarantined.append(c)
                    js = f"{state.js:.2f}" if state.js is not None else "n/a"
                    msg = f"class {c} quarantined (JS={js} > {cfg.js_threshold:.2f})"
                    dec.reasons.append(msg)
                    reasons.append(msg)
            if quarantined and update_quarantine:
                self.quarantine.record_held_back(quarantined)

        accepted = not reasons
        if accepted:
            status = "accepted"
        elif geometric_ok and quarantined:
            status = "quarantined"
        else:
            status = "rejected"
        return GateDecision(
            accepted=accepted,
            per_class=per_class,
            scene_g=float(scene_g),
            failing_classes=sorted(set(failing) | set(quarantined)),
            reasons=reasons,
            quarantined_classes=sorted(quarantined),
            scene_components=scene_scores,
            scene_evidence=scene_evidence,
            sane=True,
            status=status,
            **prov,
        )

    @classmethod
    def from_bank_file(
        cls, path: str, config: GateConfig | None = None, *, device: str | None = None, **kwargs: Any
    ) -> FrameGate:
        """Load a bank file and build a gate on it."""
        return cls(ReferenceBank.load(path), config, device=device, **kwargs)


def _failure(
    what: str,
    g: float,
    threshold: float,
    comps: Mapping[str, Any],
    weights: Mapping[str, float],
    strict: bool,
) -> str | None:
    """The reason ``what`` fails (G below threshold, or with ``strict`` a component scoring below STRICT_FLOOR),
    with the margins as numbers; None when it passes."""
    used = [n for n in comps if weights.get(n, 0) > 0]
    beyond = [n for n in used if comps[n].score < STRICT_FLOOR] if strict else []
    if g >= threshold and not beyond:
        return None
    worst = min(used, key=lambda n: comps[n].score, default=None)
    detail = ""
    if worst is not None:
        w = comps[worst]
        detail = f"; worst: {worst} {w.distance:.4g} vs d_max {w.d_max:.4g} ({w.distance / w.d_max:.2f}x)"
    if g < threshold:
        return f"{what}: G={g:.3f} < {threshold:.3g}{detail}"
    return f"{what}: G={g:.3f} but {', '.join(beyond)} beyond half its d_max{detail}"


def _default_parents() -> dict[str, str]:
    """Class -> parent of the shipped taxonomy (empty when none can be read)."""
    try:
        from ..data.taxonomy import default_taxonomy

        tax = default_taxonomy()
    except (ImportError, SimGapInputError) as exc:  # a broken taxonomy file must not stop the gate
        log.warning("no class taxonomy (%s): classes without real exemplars have no parent to fall back on", exc)
        return {}
    return {c.name: c.parent for c in tax if c.parent}


@dataclass(frozen=True)
class _Hidden:
    host_class: str  # the frame's class name (its reference may be a parent)
    evidence: HiddenClass


def _hidden(
    per_class: Mapping[str, ClassDecision],
    ref_of: Mapping[str, str],
    stats: FrameStats,
    described: np.ndarray,
    votes: np.ndarray,
    bank: ReferenceBank,
    quantile: float,
) -> list[_Hidden]:
    """Classes (nearly) every real frame holds that this frame lacks, or holds in fewer points than a class is judged
    on, while its other points vote for them beyond real frames (:func:`~simgap_ext.gate.missing.hidden_classes`);
    empty without votes or a bank of format >= 4."""
    from .bank import MIN_PLAUSIBILITY_POINTS
    from .plausibility import vote_profile

    if not votes.shape[1] or not described.size or "frame_profiles" not in bank.meta:
        return []
    n_classes = len(bank.class_names)
    host_votes: dict[str, list[np.ndarray]] = {}
    host_of: dict[str, str] = {}
    for c in per_class:
        if c not in ref_of or c not in stats.class_list:
            continue
        mine = described == stats.class_list.index(c)
        if mine.sum() >= MIN_PLAUSIBILITY_POINTS:
            host_votes.setdefault(ref_of[c], []).append(votes[mine])
            host_of.setdefault(ref_of[c], c)
    profiles = {h: vote_profile(np.concatenate(v), n_classes) for h, v in host_votes.items()}
    names = list(bank.class_names)
    shares = {c: bank.class_shares(c) for c in names}
    held: dict[str, int] = {}
    for c, dec in per_class.items():
        ref = ref_of.get(c, c)
        held[ref] = held.get(ref, 0) + int(dec.n_points)
    found = hidden_classes(
        set(ref_of.values()) | set(per_class),
        profiles,
        names,
        {c: bank.class_frames(c) for c in names},
        bank.frame_count,
        {h: bank.class_real_profiles(h) for h in profiles},
        level=1.0 - quantile,
        ignore=_IGNORED_CLASSES,
        # at the smallest share a real frame holding the class gives it (0 when none does)
        expected_points={c: (float(v.min()) if v.size else 0.0) * stats.n_points for c, v in shares.items()},
        min_points=MIN_JUDGED_POINTS,
        points=held,
        frame_points=stats.n_points,
        real_shares=shares,
    )
    return [_Hidden(host_of[h.host], h) for h in found]


def _plausibility(
    class_name: str, reference: str, stats: FrameStats, described: np.ndarray, votes: np.ndarray, bank: ReferenceBank
) -> dict[str, Any]:
    """The vote components of one class (empty when too few of its points are described):

    - ``plausibility``: the drop of its points' share of real votes for their label below the real frames' mean;
    - ``foreign``: the largest rise of their votes for another class over the real frames' vote profile
      (:func:`~simgap_ext.gate.plausibility.foreign_excess`).

    A component the bank has not calibrated (never judged the class, or a bank of format version 2) is absent."""
    import math

    from .bank import MIN_PLAUSIBILITY_POINTS
    from .geometric import ComponentScore
    from .plausibility import foreign_excess, vote_profile

    out: dict[str, Any] = {}
    if not votes.shape[1] or class_name not in stats.class_list:
        return out
    mine = described == stats.class_list.index(class_name)
    if mine.sum() < MIN_PLAUSIBILITY_POINTS:
        return out
    own = bank.class_index(reference)
    ref_p = bank.class_plausibility(reference)
    d_max = bank.class_d_max(reference, "plausibility")
    if ref_p is not None and math.isfinite(d_max):
        p = float((votes[mine] == own).mean())
        out["plausibility"] = ComponentScore(max(0.0, ref_p - p), d_max)
    ref_profile = bank.class_vote_profile(reference)
    d_max = bank.class_d_max(reference, "foreign")
    if ref_profile is not None and math.isfinite(d_max):
        profile = vote_profile(votes[mine], len(bank.class_names))
        out["foreign"] = ComponentScore(foreign_excess(profile, ref_profile, own), d_max)
    return out
