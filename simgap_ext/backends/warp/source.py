"""``WarpLidarSource``: randomized scene -> Warp ray cast -> sensor effects -> frame
(the layout of :mod:`simgap_ext.frame`).

Seeding: the scene comes from ``SeedSequence([seed, attempt, 0])`` and the sensor noise from
``SeedSequence([seed, attempt, 1 + noise_seed])``. The same ``seed`` therefore gives the same scene whatever the
preset or ``noise_seed``; a different ``noise_seed`` redraws only the sensor effects (paired real-vs-real
comparisons); a re-randomization (``attempt`` > 0) gives a new scene even if the caller reuses the seed. Foliage
penetration (:mod:`.foliage`) is part of the world: drawn from the scene's seed, the same for every preset and noise
seed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..._warp import resolve_device
from ...errors import SimGapInputError
from ...frame import make_frame
from ...sensors import EffectSettings, SensorProfile, load_sensor_profile
from ...tune.apply import apply_sensor_effects
from ...tune.load import fitted_preset_name
from .effects import apply_effects
from .foliage import foliage_rng, penetrate, penetration_lut
from .labels import CLASS_IDS, OBJECT_CLASSES, REFLECTIVITY, id_to_labels
from .raycast import build_mesh, cast_spinning, spinning_directions
from .scene import RandomizerConfig, Scene, SceneRandomizer

__all__ = ["LAYOUTS", "WarpLidarSource"]

#: Scene layouts of the embedded backend.
LAYOUTS = ("street", "open")

log = logging.getLogger(__name__)

_REFL_LUT = np.full(256, REFLECTIVITY["unlabeled"], dtype=np.float32)
for _name, _sid in CLASS_IDS.items():
    _REFL_LUT[_sid] = REFLECTIVITY[_name]


def _check_seed(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 0:
        raise SimGapInputError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def _is_profile_path(preset: Any) -> bool:
    text = os.fspath(preset)
    return text.endswith(".toml") or os.sep in text or os.path.isfile(text)


class WarpLidarSource:
    """A :class:`~simgap_ext.backends.SceneSource` that ray-casts randomized scenes with NVIDIA Warp.

    Args:
        sensor: a profile name (``"os1-64"``), a path to a profile TOML, or a :class:`SensorProfile`.
        preset: effect preset of the profile (``"ideal"`` or ``"realistic"``), or the path of a tuned profile
            (``simgap tune --out tuned.toml``): its beam table, columns and fitted model replace the sensor's.
        device: Warp device (``None``: CUDA when available, else CPU).
        effects: explicit effect settings, overriding ``preset``.
        disable: effect names (:data:`~simgap_ext.sensors.EFFECT_NAMES`) to switch off on top of the preset.
        randomizer: scene randomizer (default: :class:`SceneRandomizer` at the sensor's mount height).
        rare: default rare configuration for every render (``None``, ``"occluded"``, ``"far"``, ``"adverse_pose"``).
        noise_seed: default noise seed (see module docstring).
        rotation_rate_hz: spin rate, Hz (default: the profile's datasheet rate); sets the columns per turn
            (:meth:`~simgap_ext.sensors.SensorProfile.at_rotation_rate`).
        layout: ``"street"`` (urban street, the default) or ``"open"`` (clutter around the sensor); ignored when
            ``randomizer`` is given.
    """

    def __init__(
        self,
        sensor: str | os.PathLike[str] | SensorProfile = "os1-64",
        preset: str = "realistic",
        *,
        device: str | None = None,
        effects: EffectSettings | None = None,
        disable: Sequence[str] = (),
        randomizer: SceneRandomizer | None = None,
        rare: str | None = None,
        noise_seed: int = 0,
        rotation_rate_hz: float | None = None,
        layout: str = "street",
    ) -> None:
        self.profile: SensorProfile = sensor if isinstance(sensor, SensorProfile) else load_sensor_profile(sensor)
        if _is_profile_path(preset):
            tuned = load_sensor_profile(preset)
            preset = fitted_preset_name(tuned)
            self.profile = tuned
        if rotation_rate_hz is not None:
            self.profile = self.profile.at_rotation_rate(rotation_rate_hz)
        self.preset = preset
        base = effects if effects is not None else self.profile.preset(preset)
        self.effects: EffectSettings = base.without(*disable)
        self.device = resolve_device(device)
        if layout not in LAYOUTS:
            raise SimGapInputError(f"unknown scene layout {layout!r} (known: {', '.join(LAYOUTS)})")
        self.randomizer = randomizer or SceneRandomizer(
            RandomizerConfig(street=layout == "street"),
            sensor_height=self.profile.mount_height,
            max_range=self.profile.max_range,
        )
        self.rare = rare
        self.noise_seed = _check_seed(noise_seed, "noise_seed")
        self._penetration = penetration_lut(getattr(self.randomizer.config, "penetration", {}))
        self._directions = spinning_directions(self.profile.vertical_angles_rad(), self.profile.horizontal_resolution)

    @property
    def sensor_name(self) -> str:
        """The sensor profile name written into every frame."""
        return self.profile.name

    @property
    def class_names(self) -> list[str]:
        """The object classes this source produces (background classes are labelled too, but not listed)."""
        return list(OBJECT_CLASSES)

    def sample_scene(
        self, *, seed: int, focus_classes: Sequence[str] = (), attempt: int = 0, rare: str | None = None
    ) -> Scene:
        """The scene :meth:`render` would ray-cast for these arguments."""
        seed = _check_seed(seed, "seed")
        attempt = _check_seed(attempt, "attempt")
        return self.randomizer.sample(
            np.random.SeedSequence([seed, attempt, 0]), focus_classes=focus_classes, rare=rare or self.rare
        )

    def render(
        self,
        *,
        seed: int,
        focus_classes: Sequence[str] = (),
        frame_id: int = 0,
        attempt: int = 0,
        rare: str | None = None,
        noise_seed: int | None = None,
    ) -> dict[str, Any]:
        """Render one frame.

        Args:
            seed: scene seed (non-negative int).
            focus_classes: object classes to emphasise (extra instances).
            frame_id: recorded in the frame.
            attempt: re-randomization counter (0 = first render); part of the scene seed.
            rare: rare configuration for this frame (default: the source's).
            noise_seed: sensor-noise seed for this frame (default: the source's).

        Returns:
            A validated frame (``make_frame``) in the sensor frame, plus ``preset``, ``noise_seed`` and ``rare``.
        """
        if isinstance(focus_classes, str):  # a bare class name, not its characters
            focus_classes = [focus_classes]
        scene = self.sample_scene(seed=seed, focus_classes=focus_classes, attempt=attempt, rare=rare)
        ns = self.noise_seed if noise_seed is None else _check_seed(noise_seed, "noise_seed")
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(attempt), 1 + ns]))
        frame = self.render_scene(
            scene, rng=rng, frame_id=frame_id, seed=int(seed), focus_classes=focus_classes, attempt=int(attempt)
        )
        frame["noise_seed"] = ns
        return frame

    def render_scene(
        self,
        scene: Scene,
        *,
        rng: np.random.Generator,
        frame_id: int = 0,
        seed: int = 0,
        focus_classes: Sequence[str] = (),
        attempt: int = 0,
    ) -> dict[str, Any]:
        """Ray-cast a given scene and apply the sensor effects (see :meth:`render`)."""
        prof = self.profile
        mesh = build_mesh(scene.vertices, scene.faces, device=self.device)
        model = self.effects.model
        # A fitted model with motion skew: each column fires from where the moving sensor is at its time, in the
        # sensor frame of the sweep's reference time (the post-process then expresses the points in that frame).
        sweep = model.sweep_displacement(rng) if model is not None and model.has_motion else None
        offsets = None
        origin: np.ndarray = np.asarray(scene.sensor_origin, dtype=np.float64)
        if sweep is not None:
            n_c = prof.horizontal_resolution
            offsets = model.motion_offsets(2.0 * np.pi * np.arange(n_c) / n_c, sweep)
            origin = origin.reshape(1, 3) + offsets
        hits = cast_spinning(
            mesh,
            scene.sensor_origin,
            prof.vertical_angles_rad(),
            prof.horizontal_resolution,
            min_range=prof.min_range,
            max_range=prof.max_range,
            column_offsets=offsets,
            device=self.device,
        )
        face = hits.face
        hit = face >= 0
        safe_face = np.where(hit, face, 0)
        sem = np.where(hit, scene.face_semantic[safe_face], 0).astype(np.uint32)
        inst = np.where(hit, scene.face_instance[safe_face], 0).astype(np.uint32)
        refl = _REFL_LUT[np.minimum(sem, 255)]
        # foliage is volumetric (a world property, drawn from the scene's seed: the same leaves in every preset);
        # a world without penetrable materials (the default) skips it
        if self._penetration.any():
            hits.range = penetrate(
                mesh,
                origin,
                self._directions,
                hits.range,
                sem,
                foliage_rng(scene.seed),
                lut=self._penetration,
                device=self.device,
            )
        if self.effects.model is not None:
            return self._render_fitted(
                hits.range, sem, inst, refl, scene, rng, frame_id, seed, focus_classes, attempt, sweep
            )
        res = apply_effects(
            hits.range,
            hits.cos_incidence,
            refl,
            self.effects,
            max_range=prof.max_range,
            min_range=prof.min_range,
            rng=rng,
            elevations_deg=np.asarray(prof.vertical_angles_deg),
        )
        keep = res.keep
        points = self._directions[keep] * res.range[keep][:, None]
        frame = make_frame(
            points.astype(np.float32),
            sem[keep],
            inst[keep],
            id_to_labels(),
            intensity=res.intensity[keep],
            frame_id=frame_id,
            seed=seed,
            sensor=prof.name,
            focus_classes=list(focus_classes),
            attempt=attempt,
            coordinate_frame="sensor",
        )
        frame["preset"] = self.preset
        frame["rare"] = scene.rare
        log.debug(
            "rendered %s frame %d: %d/%d rays returned, %d mixed pixels",
            prof.name,
            frame_id,
            int(keep.sum()),
            keep.size,
            int(res.mixed.sum()),
        )
        return frame

    def _render_fitted(
        self,
        ranges: np.ndarray,
        sem: np.ndarray,
        inst: np.ndarray,
        refl: np.ndarray,
        scene: Scene,
        rng: np.random.Generator,
        frame_id: int,
        seed: int,
        focus_classes: Sequence[str],
        attempt: int,
        sweep: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Clean returns, then the fitted model's post-process (the same one Replicator frames get). With motion
        skew (``sweep``: the displacement the rays were cast with) the clean points are relative to each column's
        own origin, and the post-process moves them into the reference frame."""
        prof = self.profile
        keep = (ranges > 0) & (ranges >= prof.min_range) & (ranges < prof.max_range)
        clean = make_frame(
            (self._directions[keep] * ranges[keep][:, None]).astype(np.float32),
            sem[keep],
            inst[keep],
            id_to_labels(),
            intensity=refl[keep],
            frame_id=frame_id,
            seed=seed,
            sensor=prof.name,
            focus_classes=list(focus_classes),
            attempt=attempt,
            coordinate_frame="sensor",
        )
        frame = apply_sensor_effects(clean, self.effects.model, rng, sweep_displacement=sweep)
        frame["preset"] = self.preset
        frame["rare"] = scene.rare
        return frame

    def describe(self) -> Mapping[str, Any]:
        """JSON-safe summary (sensor, preset, active effects, device)."""
        return {
            "backend": "warp",
            "sensor": self.sensor_name,
            "preset": self.preset,
            "effects": self.effects.active_effects(),
            "device": self.device,
        }
