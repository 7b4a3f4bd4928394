"""Frozen gate configuration loaded from ``config/gate.toml``.

Every threshold and weight the gate uses lives in :class:`GateConfig` so that a run is reproducible from one
file; the TOML file shipped in ``config/gate.toml`` documents each key and the evidence behind its default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (Isaac Sim 4.5): the same parser as the tomli package
    import tomli as tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..config_files import config_dir
from ..errors import SimGapInputError

__all__ = ["GateConfig", "load_gate_config", "default_gate_config_path"]

_UNKNOWN_POLICIES = ("reject", "ignore")
_FLOAT_FIELDS = (
    "g_threshold",
    "scene_threshold",
    "calibration_quantile",
    "calibration_margin",
    "max_duplicate_fraction",
    "duplicate_tolerance",
    "js_threshold",
    "js_hysteresis",
)
_INT_FIELDS = (
    "min_points",
    "k_exemplars",
    "quarantine_window",
    "quarantine_min_samples",
    "semantic_bins",
    "semantic_permutations",
    "max_exemplars_per_class",
    "max_scene_samples",
)
_SEMANTIC_METHODS = ("sliced", "norm")
# Per-class components (every class present, stuff included; chamfer and count need instance crops) and scene
# components.
OBJECT_WEIGHT_KEYS = ("chamfer", "count", "roughness", "density", "share", "height", "plausibility", "foreign")
SCENE_WEIGHT_KEYS = ("range", "beams", "roughness", "composition", "origin")


_BOOL_KEYS = ("require_same_sensor", "strict_components", "joint_test", "segment_test")


@dataclass(frozen=True)
class GateConfig:
    """Thresholds and weights of :class:`~simgap_ext.gate.FrameGate` (see ``config/gate.toml``).

    Attributes:
        g_threshold: a class passes the geometric test when its G >= this (default 0.75; docs/gate.md).
        scene_threshold: the frame's scene-level G must be >= this.
        min_points: instance crops with fewer points are counted but not scored.
        k_exemplars: each crop is compared with this many real exemplars of its class closest in range.
        calibration_quantile: the level of the real-vs-real distance mapped exactly onto ``g_threshold`` (times
            ``calibration_margin``) when the bank calibrates its ``d_max`` values: the quantile of the scene
            distances, and per class (Bonferroni-corrected) the level of an upper prediction bound of the
            leave-one-out deviations (:mod:`~simgap_ext.gate.tailbound`). At 1.0 the largest value is taken.
        calibration_margin: ``d_max = margin * value / (1 - g_threshold)``: > 1 leaves room between the
            calibrated real-vs-real value and the threshold; the per-class joint test (:mod:`~simgap_ext.gate.joint`)
            holds its statistic to ``margin`` x its prediction bound.
        object_weights: weights of the per-class components (``chamfer``, ``count``, ``roughness``, ``density``,
            ``share``, ``height``, ``plausibility``, ``foreign``) in a class's G.
        scene_weights: weights of the scene-level components (``range``, ``beams``, ``roughness``,
            ``composition``, ``origin``).
        strict_components: a class (or the scene) also fails when any weighted component lies at or beyond its
            ``d_max`` (score 0), whatever the mean: one statistic far outside the real spread is evidence enough,
            and a weighted mean over six components would dilute it.
        joint_test: each class is also held to the joint deviation test over its per-class components
            (:mod:`~simgap_ext.gate.joint`: several components moved moderately at once); ``False`` switches it
            off (e.g. with thresholds of 0, to let geometry pass).
        segment_test: each class is also held to the segment test (:mod:`~simgap_ext.gate.segments`: more of its
            Euclidean segments look like segments of another class than in real frames, e.g. cars labelled
            vegetation); ``False`` switches it off.
        unknown_class: ``"reject"`` or ``"ignore"`` a frame class that has no real reference in the bank.
        require_same_sensor: reject frames whose ``sensor`` differs from the bank's sensor.
        background_classes: classes never cropped into instances (scene statistics only).
        max_duplicate_fraction: frames with a larger share of (near-)duplicated points are rejected as
            accumulated / ghosted, not scored.
        duplicate_tolerance: points closer than this (metres, per axis grid) count as duplicates.
        js_threshold: semantic quarantine threshold on per-class JS (bits).
        js_hysteresis: a quarantined class is released only when its JS <= ``js_threshold - js_hysteresis``.
        quarantine_window: rolling window length, in frames that passed the geometric gate.
        quarantine_min_samples: minimum instances in the window before a class can be quarantined.
        semantic_method: ``"sliced"`` or ``"norm"`` (see :func:`simgap_ext.metrics.semantic_alignment`).
        semantic_bins: histogram bins of the semantic JS.
        semantic_permutations: permutations of the small-sample bias baseline subtracted from the JS (0: raw
            JS, the seed's method; see :class:`~simgap_ext.gate.SemanticQuarantine`).
        max_exemplars_per_class: the bank keeps at most this many exemplars per class (stratified by range).
        max_scene_samples: per-frame subsample of ranges/elevations kept in the bank.
    """

    g_threshold: float = 0.75
    scene_threshold: float = 0.75
    min_points: int = 8
    k_exemplars: int = 5
    calibration_quantile: float = 0.95
    calibration_margin: float = 1.5
    object_weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "chamfer": 1.0,
            "count": 0.25,
            "roughness": 1.0,
            "density": 1.0,
            "share": 0.0,
            "height": 0.5,
            "plausibility": 1.0,
            "foreign": 1.0,
        }
    )
    scene_weights: Mapping[str, float] = field(
        default_factory=lambda: {"range": 1.0, "beams": 1.0, "roughness": 1.0, "composition": 1.0, "origin": 1.0}
    )
    strict_components: bool = True
    joint_test: bool = True
    segment_test: bool = True
    unknown_class: str = "reject"
    require_same_sensor: bool = True
    background_classes: tuple[str, ...] = ("ground", "building", "pole", "vegetation", "unlabeled", "unlabelled")
    max_duplicate_fraction: float = 0.05
    duplicate_tolerance: float = 1e-4
    js_threshold: float = 0.15
    js_hysteresis: float = 0.02
    quarantine_window: int = 20
    quarantine_min_samples: int = 10
    semantic_method: str = "sliced"
    semantic_bins: int = 16
    semantic_permutations: int = 8
    max_exemplars_per_class: int = 400
    max_scene_samples: int = 4096

    def __post_init__(self) -> None:
        self._check_types()

        def _unit(name: str, value: float) -> None:
            if not 0.0 <= float(value) <= 1.0:
                raise SimGapInputError(f"gate config: {name} must lie in [0, 1], got {value}")

        for name in ("g_threshold", "scene_threshold", "js_threshold", "max_duplicate_fraction"):
            _unit(name, getattr(self, name))
        if not 0.0 < self.calibration_quantile <= 1.0:
            raise SimGapInputError(
                f"gate config: calibration_quantile must lie in (0, 1], got {self.calibration_quantile}"
            )
        if not self.calibration_margin > 0:
            raise SimGapInputError(f"gate config: calibration_margin must be > 0, got {self.calibration_margin}")
        if not 0.0 <= self.js_hysteresis <= self.js_threshold:
            raise SimGapInputError(
                f"gate config: js_hysteresis must lie in [0, js_threshold={self.js_threshold}], "
                f"got {self.js_hysteresis}"
            )
        for name in _INT_FIELDS:
            minimum = 0 if name == "semantic_permutations" else 1
            if getattr(self, name) < minimum:
                raise SimGapInputError(f"gate config: {name} must be >= {minimum}, got {getattr(self, name)}")
        if self.duplicate_tolerance <= 0:
            raise SimGapInputError(f"gate config: duplicate_tolerance must be > 0, got {self.duplicate_tolerance}")
        if self.unknown_class not in _UNKNOWN_POLICIES:
            raise SimGapInputError(
                f"gate config: unknown_class must be one of {_UNKNOWN_POLICIES}, got {self.unknown_class!r}"
            )
        if self.semantic_method not in _SEMANTIC_METHODS:
            raise SimGapInputError(
                f"gate config: semantic_method must be one of {_SEMANTIC_METHODS}, got {self.semantic_method!r}"
            )
        for table, allowed in (
            ("object_weights", OBJECT_WEIGHT_KEYS),
            ("scene_weights", SCENE_WEIGHT_KEYS),
        ):
            weights = dict(getattr(self, table))
            extra = sorted(set(weights) - set(allowed))
            if extra:
                raise SimGapInputError(f"gate config: {table} has unknown keys {extra} (allowed: {list(allowed)})")
            if any(float(w) < 0 for w in weights.values()) or sum(float(w) for w in weights.values()) <= 0:
                raise SimGapInputError(f"gate config: {table} must be non-negative with a positive sum, got {weights}")
            # Frozen means frozen: a read-only copy, so that no caller can change a weight behind the gate's back.
            object.__setattr__(self, table, MappingProxyType({k: float(weights.get(k, 0.0)) for k in allowed}))

    def _check_types(self) -> None:
        """Types first (a TOML ``min_points = "8"`` or ``background_classes = "ground"`` must not get through)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _FLOAT_FIELDS:
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                    raise SimGapInputError(f"gate config: {f.name} must be a finite number, got {value!r}")
                object.__setattr__(self, f.name, float(value))
            elif f.name in _INT_FIELDS:
                ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and float(value).is_integer()
                if not ok:
                    raise SimGapInputError(f"gate config: {f.name} must be an integer, got {value!r}")
                object.__setattr__(self, f.name, int(value))
            elif f.name in _BOOL_KEYS and not isinstance(value, bool):
                raise SimGapInputError(f"gate config: {f.name} must be true or false, got {value!r}")
            elif f.name in ("unknown_class", "semantic_method") and not isinstance(value, str):
                raise SimGapInputError(f"gate config: {f.name} must be a string, got {value!r}")
            elif f.name in ("object_weights", "scene_weights"):
                if not isinstance(value, Mapping):
                    raise SimGapInputError(f"gate config: {f.name} must be a table of weights, got {value!r}")
                for k, w in value.items():
                    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w):
                        raise SimGapInputError(f"gate config: {f.name}.{k} must be a finite number, got {w!r}")
        classes = self.background_classes
        if not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
            raise SimGapInputError(f"gate config: background_classes must be a list of class names, got {classes!r}")
        object.__setattr__(self, "background_classes", tuple(classes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["object_weights"] = dict(self.object_weights)
        out["scene_weights"] = dict(self.scene_weights)
        out["background_classes"] = list(self.background_classes)
        return out

    def __hash__(self) -> int:
        # The weight tables are mappings, which the generated hash cannot take; hash the canonical JSON form.
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def replace(self, **changes: Any) -> GateConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def default_gate_config_path() -> Path:
    """``gate.toml`` in :func:`simgap_ext.config_files.config_dir` (``SIMGAP_CONFIG_DIR`` overrides ``config/``)."""
    return config_dir() / "gate.toml"


def load_gate_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> GateConfig:
    """Load a :class:`GateConfig` from TOML.

    Args:
        path: a TOML file; ``None`` reads the repository's ``config/gate.toml`` and falls back to the built-in
            defaults when that file does not exist.
        **overrides: field values that win over the file (e.g. from CLI flags or carb settings).

    Returns:
        The validated, frozen configuration.

    Raises:
        SimGapInputError: the file is missing (when named explicitly), is not valid TOML, or holds unknown keys
            or out-of-range values.
    """
    values: dict[str, Any] = {}
    file = Path(path) if path is not None else default_gate_config_path()
    if file.exists():
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SimGapInputError(f"gate config {file}: not valid TOML ({exc})") from exc
        except RecursionError as exc:
            raise SimGapInputError(f"gate config {file}: not valid TOML (nested too deeply)") from exc
        except OSError as exc:
            raise SimGapInputError(f"gate config {file}: cannot read ({exc.strerror or exc})") from exc
        # Keys may sit at top level or under a [gate] table.
        table = raw.get("gate", raw)
        if not isinstance(table, dict):
            raise SimGapInputError(f"gate config {file}: 'gate' must be a table ([gate]), got {table!r}"[:300])
        values = dict(table)
    elif path is not None:
        raise SimGapInputError(f"gate config {file}: file not found")
    values.update(overrides)
    known = {f.name for f in dataclasses.fields(GateConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SimGapInputError(f"gate config {file}: unknown keys {unknown}")
    return GateConfig(**values)
