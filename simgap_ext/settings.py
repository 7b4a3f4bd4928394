"""Extension settings: carb settings under ``/exts/simgap_ext/`` -> frozen dataclasses.

Pure Python: :func:`read_settings` takes a *getter* (``carb.settings.get_settings().get`` inside Kit, ``dict.get``
over a mapping of setting paths in tests) so that every rule here is tested outside Kit. The defaults equal the
``[settings]`` table of ``extension.toml`` (a test checks that they stay equal).

Values may arrive typed (from ``extension.toml``) or as strings (``--/exts/simgap_ext/frames=3`` on a command line
is not always typed by Kit), so every field is coerced and validated; a bad value raises
:class:`~simgap_ext.errors.SimGapInputError` naming the setting path. An empty string means "unset" for paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SimGapInputError

__all__ = [
    "SETTINGS_ROOT",
    "BACKENDS",
    "BatchSettings",
    "GateSettings",
    "WriterSettings",
    "UISettings",
    "SimGapSettings",
    "read_setting",
    "read_settings",
    "settings_from_mapping",
    "setting_paths",
]

SETTINGS_ROOT = "/exts/simgap_ext"
BACKENDS = ("warp", "replicator", "auto")


@dataclass(frozen=True)
class BatchSettings:
    """What a (headless) generation batch does.

    Attributes:
        headless_batch: run a batch on extension startup.
        backend: scene source, one of :data:`BACKENDS`.
        sensor: sensor profile name or path.
        preset: randomization preset of the embedded backend.
        frames: scheduled frames of the batch (>= 1; each rendered up to ``1 + max_retries`` times, only the
            accepted ones exported).
        seed: base seed of the scene randomizer.
        out_dir: export root.
        resume: resume an interrupted batch in ``out_dir``.
        bank_path: reference bank file, or None.
        real_dir: real reference scans, or None.
        reference_frames: frames rendered for a self-reference bank when neither ``bank_path`` nor ``real_dir``.
        device: Warp device name or ``"auto"``.
        max_retries: re-randomizations of a rejected scene whose tail class failed or whose class is in
            semantic quarantine (>= 0).
        quit_on_finish: post an app quit when the headless batch ends.
    """

    headless_batch: bool = False
    backend: str = "warp"
    sensor: str = "vlp-16"
    preset: str = "realistic"
    frames: int = 10
    seed: int = 0
    out_dir: str = "simgap_out"
    resume: bool = False
    bank_path: str | None = None
    real_dir: str | None = None
    reference_frames: int = 4
    device: str = "auto"
    max_retries: int = 3
    quit_on_finish: bool = False


@dataclass(frozen=True)
class GateSettings:
    """Gate overrides; ``None`` keeps the value of the gate config file.

    Attributes:
        gate_config: gate TOML path, or None for the repository's ``config/gate.toml``.
        g_threshold: geometric acceptance threshold in [0, 1], or None.
        js_threshold: semantic quarantine threshold in [0, 1] (bits), or None.
        tail_percentile: tail-class percentile in (0, 100], or None.
    """

    gate_config: str | None = None
    g_threshold: float | None = None
    js_threshold: float | None = None
    tail_percentile: float | None = None

    def overrides(self) -> dict[str, float]:
        """The thresholds that are set, as ``{field name: value}``."""
        names = ("g_threshold", "js_threshold", "tail_percentile")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass(frozen=True)
class WriterSettings:
    """Replicator integration: the writer and the ``"replicator"`` scene source.

    Attributes:
        register_writer: register ``SimGapWriter`` with Replicator's ``WriterRegistry`` when present.
        annotator: annotator the writer / scene source requests (``"pointcloud"`` or an RTX LiDAR annotator name).
        render_product: render product path the ``"replicator"`` batch backend reads (empty: none).
        randomize_event: custom event the ``"replicator"`` batch backend fires before each render.
        effects_profile: tuned sensor profile (``simgap tune --out``) whose fitted sensor-effect model the writer
            applies to every frame before the gate, or None (no post-process).
    """

    register_writer: bool = True
    annotator: str = "pointcloud"
    render_product: str = ""
    randomize_event: str = "simgap_randomize"
    effects_profile: str | None = None


@dataclass(frozen=True)
class UISettings:
    """Panel settings.

    Attributes:
        show_window: open Window > SimGap on startup when omni.ui is present.
    """

    show_window: bool = True


@dataclass(frozen=True)
class SimGapSettings:
    """Everything the extension reads from carb settings."""

    batch: BatchSettings = field(default_factory=BatchSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    writer: WriterSettings = field(default_factory=WriterSettings)
    ui: UISettings = field(default_factory=UISettings)


# Which dataclass each flat setting name belongs to; the flat names are what extension.toml declares.
_GROUPS: dict[str, type] = {"batch": BatchSettings, "gate": GateSettings, "writer": WriterSettings, "ui": UISettings}
_OPTIONAL_PATHS = {"bank_path", "real_dir", "gate_config", "effects_profile"}
_OPTIONAL_FLOATS = {"g_threshold", "js_threshold", "tail_percentile"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def setting_paths(root: str = SETTINGS_ROOT) -> dict[str, str]:
    """Flat setting name -> full carb path, e.g. ``{"frames": "/exts/simgap_ext/frames", ...}``."""
    return {f.name: f"{root}/{f.name}" for cls in _GROUPS.values() for f in dataclasses.fields(cls)}


def _as_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SimGapInputError(f"setting {path}: expected a boolean (true/false), got {value!r}")


def _as_int(value: Any, path: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool):
        raise SimGapInputError(f"setting {path}: expected an integer, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise SimGapInputError(f"setting {path}: expected an integer, got {value!r}") from exc
    if not number.is_integer():
        raise SimGapInputError(f"setting {path}: expected an integer, got {value!r}")
    out = int(number)
    if minimum is not None and out < minimum:
        raise SimGapInputError(f"setting {path}: must be >= {minimum}, got {out}")
    return out


def _as_float(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise SimGapInputError(f"setting {path}: expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise SimGapInputError(f"setting {path}: expected a number, got {value!r}") from exc
    if out != out or out in (float("inf"), float("-inf")):
        raise SimGapInputError(f"setting {path}: must be finite, got {value!r}")
    return out


def _as_str(value: Any, path: str) -> str:
    if isinstance(value, str):
        # Kit keeps the quotes of --/x="y" on some platforms.
        return value.strip().strip('"').strip("'").strip()
    if isinstance(value, bool | int | float):
        return str(value)
    raise SimGapInputError(f"setting {path}: expected a string, got {type(value).__name__}")


def _coerce(name: str, value: Any, default: Any, path: str) -> Any:
    """Coerce one raw setting value to the type of its dataclass field and check its range."""
    if name in _OPTIONAL_PATHS:
        text = _as_str(value, path)
        return text or None
    if name in _OPTIONAL_FLOATS:
        number = _as_float(value, path)
        if number < 0:  # the manifest's "negative = keep gate.toml" convention
            return None
        if name == "tail_percentile":
            if not 0 < number <= 100:
                raise SimGapInputError(f"setting {path}: must be in (0, 100], got {number}")
        elif number > 1:
            raise SimGapInputError(f"setting {path}: must be in [0, 1], got {number}")
        return number
    if isinstance(default, bool):
        return _as_bool(value, path)
    if isinstance(default, int):
        minimum = {"frames": 1, "max_retries": 0, "reference_frames": 1}.get(name)
        return _as_int(value, path, minimum=minimum)
    text = _as_str(value, path)
    if name == "backend":
        text = text.lower()
        if text not in BACKENDS:
            raise SimGapInputError(f"setting {path}: unknown backend {text!r} (choose from {', '.join(BACKENDS)})")
    elif not text and name in ("sensor", "out_dir", "device", "annotator", "preset", "randomize_event"):
        raise SimGapInputError(f"setting {path}: must not be empty")
    return text


def read_settings(get: Callable[[str], Any], root: str = SETTINGS_ROOT) -> SimGapSettings:
    """Read and validate every SimGap setting through a getter.

    Args:
        get: returns the raw value at a full setting path, or None when unset (``carb.settings``' ``get``).
        root: settings root path.

    Returns:
        The frozen settings; unset values take the dataclass defaults.

    Raises:
        SimGapInputError: a value of the wrong type or out of range, naming its setting path.
    """
    groups: dict[str, Any] = {}
    for group, cls in _GROUPS.items():
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            path = f"{root}/{f.name}"
            raw = get(path)
            if raw is None:
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            values[f.name] = _coerce(f.name, raw, default, path)
        groups[group] = cls(**values)
    return SimGapSettings(**groups)


def read_setting(get: Callable[[str], Any], name: str, root: str = SETTINGS_ROOT) -> Any:
    """One setting by flat name, coerced and validated like :func:`read_settings` (its default when unset).

    For code that needs a single value (the Replicator writer's ``effects_profile``) and must not fail on an
    unrelated bad setting.

    Raises:
        SimGapInputError: an unknown name, or a bad value (naming its setting path).
    """
    for cls in _GROUPS.values():
        for f in dataclasses.fields(cls):
            if f.name == name:
                path = f"{root}/{name}"
                raw = get(path)
                default = f.default if f.default is not dataclasses.MISSING else None
                return default if raw is None else _coerce(name, raw, default, path)
    raise SimGapInputError(f"unknown SimGap setting {name!r}")


def settings_from_mapping(values: Mapping[str, Any], root: str = SETTINGS_ROOT) -> SimGapSettings:
    """:func:`read_settings` over a mapping keyed by flat names (``"frames"``) or full paths.

    Args:
        values: setting values; unknown keys raise, so that a typo does not silently keep a default.
        root: settings root path.

    Raises:
        SimGapInputError: an unknown setting name, or any error of :func:`read_settings`.
    """
    paths = setting_paths(root)
    full: dict[str, Any] = {}
    for key, value in values.items():
        path = key if key.startswith("/") else f"{root}/{key}"
        if path not in paths.values():
            raise SimGapInputError(f"unknown SimGap setting {key!r} (known: {', '.join(sorted(paths))})")
        full[path] = value
    return read_settings(full.get, root)
