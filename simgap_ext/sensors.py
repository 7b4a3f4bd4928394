"""LiDAR sensor profiles: beam geometry, range limits, DoGSS-PCL ``d_max`` and sensor-effect presets.

Profiles live in ``config/sensors/<name>.toml`` (see :func:`simgap_ext.config_files.config_dir`). Each gives the real
vertical angle table of a spinning LiDAR, its horizontal resolution (columns per revolution), range limits, the
``max_expected_distance`` used to normalise the geometric score, and two effect presets: ``ideal`` (what a naive
synthetic pipeline produces) and ``realistic`` (what the real sensor shows). ``docs/backend.md`` documents every key.

Example::

    prof = load_sensor_profile("os1-128")
    prof.max_expected_distance      # metres, Euclidean Chamfer convention
    prof.preset("realistic").range_noise_sigma
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .config_files import config_dir, load_toml
from .errors import SimGapInputError
from .tune.model import SensorEffectModel

__all__ = [
    "EFFECT_NAMES",
    "EffectSettings",
    "SensorProfile",
    "load_sensor_profile",
    "profile_to_toml",
    "list_sensor_profiles",
    "sensors_dir",
    "ReadOnlyMapping",
]

#: Switchable sensor effects, the names accepted by :meth:`EffectSettings.without`.
EFFECT_NAMES = (
    "range_noise",
    "random_drop",
    "range_drop",
    "incidence_drop",
    "mixed_pixels",
    "intensity_falloff",
    "intensity_noise",
    "sky_drop",
    "self_occlusion",
)

_INTENSITY_MODELS = ("reflectivity", "physical")
_PROBABILITIES = ("random_drop", "mixed_pixel_prob")
_BOOLEANS = ("range_drop", "incidence_drop")
# Elevations (degrees) may be negative; the azimuth lies in [0, 360).
_ELEVATIONS = ("sky_drop_elevation_deg", "self_occlusion_elevation_deg")


class ReadOnlyMapping(Mapping):
    """An immutable, picklable mapping (``types.MappingProxyType`` cannot be pickled or deep-copied)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[Any, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ReadOnlyMapping is immutable")

    def __getstate__(self) -> dict[Any, Any]:
        return self._data

    def __setstate__(self, state: dict[Any, Any]) -> None:
        object.__setattr__(self, "_data", dict(state))

    def __repr__(self) -> str:
        return f"ReadOnlyMapping({self._data!r})"


@dataclass(frozen=True)
class EffectSettings:
    """Sensor effects applied after the ray cast (all off = the ``ideal`` preset).

    Attributes:
        range_noise_sigma: Gaussian range noise along the ray, metres (1 sigma); 0 disables.
        random_drop: range-independent probability that a return is lost.
        detection_range: range (metres) at which a 10 %-reflective target at normal incidence is detected with
            probability 1/2 (the datasheet's "range at 10 % reflectivity"); 0 disables energy-based drop. The
            return energy relative to that threshold is ``(reflectivity / 0.1) * cos(theta) ** incidence_exponent
            * (detection_range / r) ** 2`` and a return survives with probability
            ``sigmoid(ln(energy) / detection_softness)``.
        detection_softness: width of the detection threshold in ln(energy) units (small = sharp threshold).
        range_drop: include the ``1 / r^2`` fall-off in the return energy (range-dependent drop).
        incidence_drop: include the ``cos(theta) ** incidence_exponent`` term (incidence-angle drop).
        incidence_exponent: 1 for a Lambertian surface; below 1 for rough surfaces that still return at grazing
            incidence.
        mixed_pixel_prob: probability that a ray on a depth edge returns a point between the two surfaces
            (beam divergence footprint straddling the edge).
        mixed_pixel_min_gap: range jump (metres) between neighbouring rays that counts as a depth edge.
        mixed_pixel_max_gap: largest range jump (metres) that still blends into one return; beyond it the two
            echoes are separate and the sensor reports the surface its own ray hit.
        intensity_model: ``"reflectivity"`` (intensity = surface reflectivity) or ``"physical"``
            (reflectivity * cos(incidence) * range fall-off).
        intensity_noise_sigma: additive Gaussian intensity noise (intensity is in [0, 1]).
        sky_drop_per_deg: no-return probability of a ray per degree of elevation above ``sky_drop_elevation_deg``
            (clipped to 1; 0 disables): real upper beams look at sky through gaps a synthetic street fills with
            facades and trees, so they return less often than the embedded world lets them.
        sky_drop_elevation_deg: elevation (degrees) where the sky no-return ramp starts.
        self_occlusion_per_deg: share of the azimuth circle the sensor's own vehicle hides, per degree of
            elevation below ``self_occlusion_elevation_deg`` (clipped to 1; 0 disables): the roof and body return
            nothing (real sensors and datasets drop those returns), in two sectors centred on
            ``self_occlusion_azimuth_deg`` and the opposite direction (the body is longer than it is wide).
        self_occlusion_elevation_deg: elevation (degrees) below which beams start to hit the vehicle.
        self_occlusion_azimuth_deg: centre of the first hidden sector, degrees counter-clockwise from +x.
        model: a sensor-effect model fitted to real scans (``simgap tune``); when set, the embedded backend
            renders clean ranges and applies this model (:func:`simgap_ext.tune.apply_sensor_effects`) instead
            of the parametric effects above. TOML: a ``[presets.<name>.model]`` table.
    """

    range_noise_sigma: float = 0.0
    random_drop: float = 0.0
    detection_range: float = 0.0
    detection_softness: float = 0.3
    range_drop: bool = True
    incidence_drop: bool = True
    incidence_exponent: float = 1.0
    mixed_pixel_prob: float = 0.0
    mixed_pixel_min_gap: float = 0.5
    mixed_pixel_max_gap: float = 4.0
    intensity_model: str = "reflectivity"
    intensity_noise_sigma: float = 0.0
    sky_drop_per_deg: float = 0.0
    sky_drop_elevation_deg: float = 0.0
    self_occlusion_per_deg: float = 0.0
    self_occlusion_elevation_deg: float = 0.0
    self_occlusion_azimuth_deg: float = 0.0
    model: SensorEffectModel | None = None

    def __post_init__(self) -> None:
        # Checked here, not only when a TOML preset is read: settings built in code reach the same kernels, and
        # e.g. random_drop = 1.5 would silently drop every return.
        for f in fields(self):
            val = getattr(self, f.name)
            if f.name == "model":
                if val is not None and not isinstance(val, SensorEffectModel):
                    raise SimGapInputError(f"'model' must be a SensorEffectModel or None, got {type(val).__name__}")
            elif f.name == "intensity_model":
                if val not in _INTENSITY_MODELS:
                    raise SimGapInputError(f"'intensity_model' must be one of {list(_INTENSITY_MODELS)}, got {val!r}")
            elif f.name in _BOOLEANS:
                if not isinstance(val, bool):
                    raise SimGapInputError(f"{f.name!r} must be true or false, got {val!r}")
            elif isinstance(val, bool) or not isinstance(val, numbers.Real) or not math.isfinite(val):
                raise SimGapInputError(f"{f.name!r} must be a finite number, got {val!r}")
            elif f.name in _ELEVATIONS:
                if not -90.0 <= val <= 90.0:
                    raise SimGapInputError(f"{f.name!r} is an elevation and must be in [-90, 90] degrees, got {val}")
            elif f.name == "self_occlusion_azimuth_deg" and not 0.0 <= val < 360.0:
                raise SimGapInputError(f"{f.name!r} must be in [0, 360) degrees, got {val}")
            elif val < 0:
                raise SimGapInputError(f"{f.name!r} must be >= 0, got {val}")
            elif f.name in _PROBABILITIES and val > 1:
                raise SimGapInputError(f"{f.name!r} is a probability and must be in [0, 1], got {val}")
        if self.mixed_pixel_max_gap <= self.mixed_pixel_min_gap:
            raise SimGapInputError("'mixed_pixel_max_gap' must be > 'mixed_pixel_min_gap'")

    def without(self, *effects: str) -> EffectSettings:
        """Return a copy with the named effects switched off.

        Args:
            effects: names from :data:`EFFECT_NAMES`.

        Raises:
            SimGapInputError: an unknown effect name.
        """
        off: dict[str, Any] = {}
        for name in effects:
            if name == "range_noise":
                off["range_noise_sigma"] = 0.0
            elif name == "random_drop":
                off["random_drop"] = 0.0
            elif name == "range_drop":
                off["range_drop"] = False
            elif name == "incidence_drop":
                off["incidence_drop"] = False
            elif name == "mixed_pixels":
                off["mixed_pixel_prob"] = 0.0
            elif name == "intensity_falloff":
                off["intensity_model"] = "reflectivity"
            elif name == "intensity_noise":
                off["intensity_noise_sigma"] = 0.0
            elif name == "sky_drop":
                off["sky_drop_per_deg"] = 0.0
            elif name == "self_occlusion":
                off["self_occlusion_per_deg"] = 0.0
            else:
                raise SimGapInputError(f"unknown sensor effect {name!r} (known: {', '.join(EFFECT_NAMES)})")
        return replace(self, **off)

    def active_effects(self) -> list[str]:
        """Names of the effects this setting switches on, in :data:`EFFECT_NAMES` order."""
        on = {
            "range_noise": self.range_noise_sigma > 0,
            "random_drop": self.random_drop > 0,
            "range_drop": self.detection_range > 0 and self.range_drop,
            "incidence_drop": self.detection_range > 0 and self.incidence_drop,
            "mixed_pixels": self.mixed_pixel_prob > 0,
            "intensity_falloff": self.intensity_model == "physical",
            "intensity_noise": self.intensity_noise_sigma > 0,
            "sky_drop": self.sky_drop_per_deg > 0,
            "self_occlusion": self.self_occlusion_per_deg > 0,
        }
        if self.model is not None:
            return ["fitted_model"]
        return [n for n in EFFECT_NAMES if on[n]]


@dataclass(frozen=True)
class SensorProfile:
    """A spinning LiDAR: beam table, sampling, range limits, DoGSS-PCL ``d_max`` and effect presets.

    Attributes:
        name: profile name (the TOML file stem), e.g. ``"os1-128"``.
        channels: number of beams.
        vertical_angles_deg: (channels,) elevation per beam, degrees, beam 0 at the top (strictly decreasing).
        horizontal_resolution: columns (firings per beam) per revolution.
        max_range: farthest return, metres.
        min_range: nearest return, metres.
        max_expected_distance: ``d_max`` of the geometric score, metres (Euclidean Chamfer convention).
        rotation_rate_hz: spin rate, Hz (the datasheet default); ``horizontal_resolution`` is the column count
            at this rate. :meth:`at_rotation_rate` gives the profile at another rate (the firing rate is fixed,
            so columns scale with 1 / rate). The simulated sensor is motion-free.
        mount_height: sensor height above the ground, metres (scenes place the sensor there).
        beam_divergence_mrad: beam divergence, milliradians (informational).
        range_accuracy_m: datasheet range accuracy, metres (informational).
        description: human-readable model description.
        presets: preset name -> :class:`EffectSettings`; always has ``"ideal"`` and ``"realistic"``.
        source: the TOML file the profile came from (``""`` when built in code).
    """

    name: str
    channels: int
    vertical_angles_deg: tuple[float, ...]
    horizontal_resolution: int
    max_range: float
    min_range: float
    max_expected_distance: float
    rotation_rate_hz: float = 10.0
    mount_height: float = 1.73
    beam_divergence_mrad: float = 3.0
    range_accuracy_m: float = 0.03
    description: str = ""
    presets: Mapping[str, EffectSettings] = field(
        default_factory=lambda: ReadOnlyMapping({"ideal": EffectSettings(), "realistic": EffectSettings()})
    )
    source: str = ""

    @property
    def azimuth_step_deg(self) -> float:
        """Horizontal angle between consecutive columns, degrees."""
        return 360.0 / self.horizontal_resolution

    @property
    def n_rays(self) -> int:
        """Rays per revolution (``channels * horizontal_resolution``)."""
        return self.channels * self.horizontal_resolution

    @property
    def vertical_fov_deg(self) -> tuple[float, float]:
        """(lowest, highest) beam elevation, degrees."""
        return (min(self.vertical_angles_deg), max(self.vertical_angles_deg))

    def vertical_angles_rad(self) -> np.ndarray:
        """(channels,) float32 beam elevations in radians, beam 0 at the top."""
        return np.radians(np.asarray(self.vertical_angles_deg, dtype=np.float64)).astype(np.float32)

    def at_rotation_rate(self, hz: float) -> SensorProfile:
        """The profile spun at ``hz``: columns per turn ``round(horizontal_resolution * rotation_rate_hz / hz)``.

        The firing rate of a spinning LiDAR is fixed, so a faster spin gives fewer columns per turn (an
        HDL-32E gives about 2,170 columns at 10 Hz and about 1,085 at nuScenes' 20 Hz).

        Raises:
            SimGapInputError: a non-positive or non-finite rate.
        """
        if isinstance(hz, bool) or not isinstance(hz, numbers.Real) or not math.isfinite(hz) or hz <= 0:
            raise SimGapInputError(f"rotation rate must be a positive number of Hz, got {hz!r}")
        if float(hz) == self.rotation_rate_hz:
            return self
        cols = max(1, int(round(self.horizontal_resolution * self.rotation_rate_hz / float(hz))))
        return replace(self, horizontal_resolution=cols, rotation_rate_hz=float(hz))

    def preset(self, name: str) -> EffectSettings:
        """Effect settings of a preset.

        Raises:
            SimGapInputError: unknown preset (the message lists the known ones).
        """
        try:
            return self.presets[name]
        except KeyError:
            raise SimGapInputError(
                f"sensor {self.name!r}: unknown preset {name!r} (known: {', '.join(sorted(self.presets))})"
            ) from None


def sensors_dir() -> Path:
    """The folder holding ``<name>.toml`` sensor profiles (``config_dir() / "sensors"``)."""
    return config_dir() / "sensors"


def list_sensor_profiles() -> list[str]:
    """Sorted names of the sensor profiles in :func:`sensors_dir`."""
    d = sensors_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.toml"))


def load_sensor_profile(name_or_path: str | os.PathLike[str]) -> SensorProfile:
    """Load and validate a sensor profile.

    Args:
        name_or_path: a profile name such as ``"vlp-16"`` (looked up in :func:`sensors_dir`) or a path to a
            ``.toml`` file.

    Returns:
        The validated :class:`SensorProfile`.

    Raises:
        SimGapInputError: unknown name, unreadable file, or an invalid key (the message names file and key).
    """
    if isinstance(name_or_path, SensorProfile):
        return name_or_path
    text = os.fspath(name_or_path)
    cand = Path(text)
    if cand.suffix == ".toml" or cand.is_file() or os.sep in text:
        path = cand
    else:
        path = sensors_dir() / f"{text}.toml"
        if not path.is_file():
            known = ", ".join(list_sensor_profiles()) or "none"
            raise SimGapInputError(f"unknown sensor profile {text!r} (known: {known}; looked in {sensors_dir()})")
    return _profile_from_dict(load_toml(path), path)


#: Rays per revolution a profile may declare (a 128-beam sensor at 4096 columns is 524,288).
MAX_RAYS = 1 << 24

_REQUIRED = ("channels", "vertical_angles_deg", "horizontal_resolution", "max_range", "max_expected_distance")
_TOP_KEYS = {f.name for f in fields(SensorProfile)} - {"source"}
_PRESET_KEYS = {f.name for f in fields(EffectSettings)}


def _number(doc: Mapping[str, Any], key: str, where: str, *, default: float | None = None) -> float:
    if key not in doc:
        if default is None:
            raise SimGapInputError(f"{where}: missing key {key!r}")
        return float(default)
    val = doc[key]
    if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val):
        raise SimGapInputError(f"{where}: {key!r} must be a finite number, got {val!r}")
    return float(val)


def _preset_from_dict(doc: Any, where: str) -> EffectSettings:
    if not isinstance(doc, Mapping):
        raise SimGapInputError(f"{where}: must be a table")
    unknown = sorted(set(doc) - _PRESET_KEYS)
    if unknown:
        raise SimGapInputError(f"{where}: unknown key(s) {unknown} (known: {sorted(_PRESET_KEYS)})")
    # numbers as floats (TOML may write 0 for 0.0); EffectSettings checks every value and range
    kw = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in doc.items()}
    if "model" in kw:
        kw["model"] = SensorEffectModel.from_dict(kw["model"], f"{where}.model")
    try:
        return EffectSettings(**kw)
    except SimGapInputError as exc:
        raise SimGapInputError(f"{where}: {exc}") from exc


def _profile_from_dict(doc: Mapping[str, Any], path: Path) -> SensorProfile:
    where = str(path)
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise SimGapInputError(f"{where}: unknown key(s) {unknown}")
    for key in _REQUIRED:
        if key not in doc:
            raise SimGapInputError(f"{where}: missing key {key!r}")
    name = doc.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise SimGapInputError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    channels = doc["channels"]
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise SimGapInputError(f"{where}: 'channels' must be a positive integer, got {channels!r}")
    angles_raw = doc["vertical_angles_deg"]
    if not isinstance(angles_raw, list) or not all(
        isinstance(a, int | float) and not isinstance(a, bool) for a in angles_raw
    ):
        raise SimGapInputError(f"{where}: 'vertical_angles_deg' must be an array of numbers")
    angles = tuple(float(a) for a in angles_raw)
    if len(angles) != channels:
        raise SimGapInputError(f"{where}: 'vertical_angles_deg' has {len(angles)} entries for channels = {channels}")
    if any(not math.isfinite(a) or abs(a) >= 90.0 for a in angles):
        raise SimGapInputError(f"{where}: 'vertical_angles_deg' must hold finite angles in (-90, 90) degrees")
    if any(b >= a for a, b in zip(angles, angles[1:], strict=False)):
        raise SimGapInputError(f"{where}: 'vertical_angles_deg' must be strictly decreasing (beam 0 at the top)")
    cols = doc["horizontal_resolution"]
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise SimGapInputError(f"{where}: 'horizontal_resolution' must be a positive integer (columns), got {cols!r}")
    if channels * cols > MAX_RAYS:
        # Checked before anything allocates a ray per beam and column (10^12 declared rays is a MemoryError).
        raise SimGapInputError(
            f"{where}: channels x horizontal_resolution = {channels * cols} rays per revolution; at most {MAX_RAYS} "
            "are supported"
        )
    max_range = _number(doc, "max_range", where)
    min_range = _number(doc, "min_range", where, default=0.0)
    if not 0.0 <= min_range < max_range:
        raise SimGapInputError(f"{where}: need 0 <= 'min_range' < 'max_range', got {min_range} and {max_range}")
    dmax = _number(doc, "max_expected_distance", where)
    if dmax <= 0:
        raise SimGapInputError(f"{where}: 'max_expected_distance' must be > 0, got {dmax}")
    rate = _number(doc, "rotation_rate_hz", where, default=10.0)
    height = _number(doc, "mount_height", where, default=1.73)
    div = _number(doc, "beam_divergence_mrad", where, default=3.0)
    acc = _number(doc, "range_accuracy_m", where, default=0.03)
    for key, val in (("rotation_rate_hz", rate), ("beam_divergence_mrad", div), ("range_accuracy_m", acc)):
        if val < 0:
            raise SimGapInputError(f"{where}: {key!r} must be >= 0, got {val}")
    if height <= 0:  # the scenes stand the sensor this high above the ground
        raise SimGapInputError(f"{where}: 'mount_height' must be > 0 metres, got {height}")
    presets_doc = doc.get("presets", {})
    if not isinstance(presets_doc, Mapping):
        raise SimGapInputError(f"{where}: 'presets' must be a table of tables")
    presets = {k: _preset_from_dict(v, f"{where}: [presets.{k}]") for k, v in presets_doc.items()}
    presets.setdefault("ideal", EffectSettings())
    if "realistic" not in presets:
        raise SimGapInputError(f"{where}: missing [presets.realistic]")
    return SensorProfile(
        name=name,
        channels=channels,
        vertical_angles_deg=angles,
        horizontal_resolution=cols,
        max_range=max_range,
        min_range=min_range,
        max_expected_distance=dmax,
        rotation_rate_hz=rate,
        mount_height=height,
        beam_divergence_mrad=div,
        range_accuracy_m=acc,
        description=str(doc.get("description", "")),
        presets=ReadOnlyMapping(presets),
        source=where,
    )


def profile_to_toml(profile: SensorProfile, *, header: str = "") -> str:
    """The TOML text of a profile (every key :func:`load_sensor_profile` reads; fitted models included).

    ``load_sensor_profile`` of the written file gives back an equal profile (except ``source``).
    """
    from .tune.toml_out import dumps

    doc: dict[str, Any] = {
        "name": profile.name,
        "description": profile.description,
        "channels": profile.channels,
        "vertical_angles_deg": [float(a) for a in profile.vertical_angles_deg],
        "horizontal_resolution": profile.horizontal_resolution,
        "rotation_rate_hz": float(profile.rotation_rate_hz),
        "min_range": float(profile.min_range),
        "max_range": float(profile.max_range),
        "mount_height": float(profile.mount_height),
        "beam_divergence_mrad": float(profile.beam_divergence_mrad),
        "range_accuracy_m": float(profile.range_accuracy_m),
        "max_expected_distance": float(profile.max_expected_distance),
    }
    presets: dict[str, Any] = {}
    for name, eff in profile.presets.items():
        row: dict[str, Any] = {}
        for f in fields(eff):
            val = getattr(eff, f.name)
            if f.name == "model":
                if val is not None:
                    row["model"] = val.to_dict()
            else:
                row[f.name] = val if isinstance(val, bool | str) else float(val)
        presets[name] = row
    doc["presets"] = presets
    return dumps(doc, header=header)
