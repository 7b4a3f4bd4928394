"""Find the fitted :class:`~simgap_ext.tune.model.SensorEffectModel` in a tuned sensor profile (``simgap tune --out``).

A tuned profile is a sensor profile TOML whose ``tuned`` preset (or another preset) carries a
``[presets.<name>.model]`` table. The embedded backend (``--preset tuned.toml``), the Replicator writer
(``effects=``) and the report's before/after section all need "the model of this file"; this module is the one
place that decides which preset that is.
"""

from __future__ import annotations

import os

from ..errors import SimGapInputError
from ..sensors import SensorProfile, load_sensor_profile
from .model import SensorEffectModel

__all__ = ["fitted_preset_name", "load_effect_model"]


def fitted_preset_name(profile: SensorProfile) -> str:
    """The preset a tuned profile is meant for: ``"tuned"`` when it has a model, else the first fitted preset,
    else ``"realistic"`` (a plain profile passed where a tuned one was expected)."""
    fitted = [n for n, e in profile.presets.items() if e.model is not None]
    return "tuned" if "tuned" in fitted else (fitted[0] if fitted else "realistic")


def load_effect_model(
    profile: str | os.PathLike[str] | SensorProfile, preset: str | None = None
) -> tuple[SensorEffectModel, SensorProfile, str]:
    """The fitted effect model of a tuned profile.

    Args:
        profile: a tuned profile TOML path (or name / loaded profile).
        preset: the preset to take the model from (default: :func:`fitted_preset_name`).

    Returns:
        ``(model, profile, preset name)``.

    Raises:
        SimGapInputError: unreadable profile, unknown preset, or a preset without a fitted model (the message says
            to run ``simgap tune``).
    """
    prof = load_sensor_profile(profile)
    name = preset or fitted_preset_name(prof)
    model = prof.preset(name).model
    if model is None:
        where = getattr(prof, "source", "") or prof.name
        raise SimGapInputError(
            f"sensor profile {where}: preset {name!r} has no fitted sensor-effect model (write one with "
            "`simgap tune --out tuned.toml`)"
        )
    return model, prof, name
