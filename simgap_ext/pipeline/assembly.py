"""One assembly path from settings to a running gate: reference bank -> gate -> tail classes -> runner or sink.

``simgap generate`` (:mod:`simgap_ext.cli.cmd_generate`), the Kit headless batch
(:func:`simgap_ext.replicator.batch.prepare_batch`) and the Replicator writer
(:func:`simgap_ext.replicator.writer.build_sink`) all call this module, so that they load, build and cache the
bank, pick tail classes and targets, refuse a bank of another sensor and describe the run in ``run.json`` the
same way. Only the wording of errors differs: each caller names its own flags or settings (:class:`SettingNames`).

The bank cache ``OUT/bank.npz`` follows the run directory's rule (:mod:`~simgap_ext.pipeline.run_dir`): it is
reused by a resume of the run that recorded it, replaced only when it is provably SimGap's cache of this very
directory (its metadata says so: a prepared batch that never ran leaves one), and never overwritten otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SimGapInputError
from .run_dir import RunDir

__all__ = [
    "SELF_REFERENCE_SEED",
    "SettingNames",
    "CLI_NAMES",
    "KIT_NAMES",
    "RunAssembly",
    "resolve_sensor",
    "obtain_bank",
    "check_same_sensor",
    "tail_plan",
    "assemble_run",
    "assemble_sink",
]

_log = logging.getLogger(__name__)

# Run seeds derive from SeedSequence([run_seed, frame, attempt]); self-reference frames use a different entropy
# prefix so that no reference scene equals a generated one.
SELF_REFERENCE_SEED = 0x5E1F
_CACHE_MARK = "run_dir_cache"


@dataclass(frozen=True)
class SettingNames:
    """How a caller names its inputs in error messages (CLI flags or Kit settings)."""

    sensor: str = "--sensor"
    bank: str = "--bank"
    real: str = "--real"
    out: str = "--out"
    resume_hint: str = "pass --resume to continue it or choose an empty output directory"


CLI_NAMES = SettingNames()
KIT_NAMES = SettingNames(
    sensor="setting /exts/simgap_ext/sensor",
    bank="setting /exts/simgap_ext/bank_path",
    real="setting /exts/simgap_ext/real_dir",
    out="setting /exts/simgap_ext/out_dir",
    resume_hint="set /exts/simgap_ext/resume=true to continue it or choose an empty directory",
)


def resolve_sensor(sensor: str, names: SettingNames = CLI_NAMES) -> str:
    """The profile name of ``sensor`` (a name or TOML path); a misspelt name (``vlp16``) is refused here, before
    it can be written into a bank."""
    from ..sensors import load_sensor_profile

    try:
        return load_sensor_profile(sensor).name
    except SimGapInputError as exc:
        raise SimGapInputError(f"{names.sensor}: {exc}") from exc


def _is_our_cache(path: Path, run_dir: RunDir) -> bool:
    """``path`` is a bank this module cached for ``run_dir`` (its metadata names the directory)."""
    from ..gate import ReferenceBank

    if path.is_symlink() or not path.is_file():
        return False
    try:
        bank = ReferenceBank.load(path)
    except (SimGapInputError, ValueError, OSError):
        return False
    return bank.meta.get(_CACHE_MARK) == os.path.realpath(run_dir.path)


def obtain_bank(
    run_dir: RunDir,
    *,
    sensor: str,
    config: Any,
    device: str | None,
    resume: bool,
    bank_path: str | os.PathLike[str] | None = None,
    real_dir: str | os.PathLike[str] | None = None,
    self_reference_frames: int | None = None,
    preset: str = "realistic",
    names: SettingNames = CLI_NAMES,
    scan_options: Mapping[str, Any] | None = None,
) -> tuple[Any, Path, dict[str, Any], bool]:
    """Load ``bank_path``, or build (or reuse) the cache ``OUT/bank.npz`` from real scans or self-reference frames.

    Call with ``run_dir`` locked (the cache is written here). ``scan_options`` (``label_map``, ``layout``,
    ``columns``) go to :func:`~simgap_ext.data.iter_scans` when the bank is built from real scans.

    Returns:
        (bank, its path, the run.json identity of the reference data, self_reference).

    Raises:
        SimGapInputError: a missing bank/real directory, or a ``bank.npz`` in the way that SimGap did not cache.
        ReferenceDataError: an unreadable or invalid bank.
    """
    from ..gate import ReferenceBank
    from .runner import derive_seed, fingerprint_file

    self_ref = False
    if bank_path is not None:
        path = Path(bank_path).expanduser()
        if not path.is_file():
            raise SimGapInputError(f"{names.bank}: no such file {path}")
        ident: dict[str, Any] = {"bank": str(path.resolve())}
    else:
        path = run_dir.bank_cache
        recorded = resume and run_dir.read_owner(run_dir.run_config) is not None
        # A resumed run gates against its recorded bank (run.json holds its hash); a fresh run rebuilds it, since a
        # leftover cache may come from other real data or settings.
        reuse = recorded and path.is_file() and not path.is_symlink()
        if not reuse and (path.exists() or path.is_symlink()) and not _is_our_cache(path, run_dir):
            raise SimGapInputError(
                f"{path} exists and is not a bank SimGap cached for this directory; SimGap never overwrites it: move "
                f"it away, or pass it with {names.bank}"
            )
        if real_dir is not None:
            real = Path(real_dir).expanduser()
            if not real.exists():
                raise SimGapInputError(f"{names.real}: no such directory {real}")
            ident = {"real": str(real.resolve())}
            if not reuse:
                from ..data import iter_scans

                _log.info("building the reference bank from %s", real)
                scans = iter_scans(real, sensor=sensor, **dict(scan_options or {}))
                bank = ReferenceBank.build(scans, sensor=sensor, config=config, device=device)
                _save_cache(bank, path, run_dir)
        else:
            if self_reference_frames is None:
                raise SimGapInputError(f"give {names.bank} or {names.real}")
            self_ref = True
            ident = {"self_reference_frames": int(self_reference_frames)}
            if not reuse:
                from ..backends import get_scene_source

                _log.warning(
                    "SimGap: neither a bank nor real scans: building a SELF-REFERENCE bank from %d frames of the "
                    "embedded backend; the gate then measures consistency with the simulator, not the sim-to-real gap",
                    self_reference_frames,
                )
                source = get_scene_source("warp", sensor=sensor, preset=preset, device=device)
                frames = [
                    source.render(seed=derive_seed(SELF_REFERENCE_SEED, i, 0), frame_id=i)
                    for i in range(int(self_reference_frames))
                ]
                bank = ReferenceBank.build(frames, sensor=sensor, config=config, device=device)
                _save_cache(bank, path, run_dir)
    bank = ReferenceBank.load(path)
    ident["bank_sha256"] = fingerprint_file(path)
    return bank, path, ident, self_ref


def _save_cache(bank: Any, path: Path, run_dir: RunDir) -> None:
    bank.meta[_CACHE_MARK] = os.path.realpath(run_dir.path)
    bank.save(path)


def check_same_sensor(bank: Any, sensor_name: str, config: Any, names: SettingNames = CLI_NAMES) -> None:
    """Refuse a bank of another sensor (otherwise every frame would be rejected one by one for that reason)."""
    if config.require_same_sensor and bank.sensor and sensor_name and sensor_name != "unknown":
        if bank.sensor != sensor_name:
            raise SimGapInputError(
                f"{names.sensor}: the reference bank {bank.source or ''} holds {bank.sensor} scans but the sensor is "
                f"{sensor_name}; use a bank of the same sensor (or set require_same_sensor = false in the gate config)"
            )


def tail_plan(
    bank: Any,
    tail_percentile: float,
    *,
    renderable: Sequence[str] = (),
    target_per_class: int | None = None,
) -> tuple[list[str], Any]:
    """Tail classes of ``bank`` and the focus plan over those the source can render.

    Returns:
        (tail classes rarest first, a :class:`~simgap_ext.pipeline.TailFocusPlan`).
    """
    from ..gate import compute_synthetic_generation_budget, identify_tail_classes
    from .runner import TailFocusPlan

    if not 0.0 <= float(tail_percentile) <= 100.0:
        raise SimGapInputError(f"tail percentile must lie in [0, 100], got {tail_percentile}")
    tails = identify_tail_classes(bank.class_counts, tail_percentile) if bank.class_counts else []
    render = set(renderable)
    focusable = [c for c in tails if not render or c in render]
    targets = None
    if target_per_class is not None and focusable:
        budget = compute_synthetic_generation_budget(bank.class_counts, target_per_class, tail_classes=focusable)
        targets = {name: row.deficit for name, row in budget.items()}
    return tails, TailFocusPlan(focusable, targets)


@dataclass
class RunAssembly:
    """A runner ready to run, and what it was assembled from.

    Attributes:
        runner: the :class:`~simgap_ext.pipeline.GenerationRunner`.
        bank: the :class:`~simgap_ext.gate.ReferenceBank`.
        bank_path: its file.
        self_reference: the bank was rendered from the embedded backend.
        tail_classes: the run's tail classes.
        config: the :class:`~simgap_ext.gate.GateConfig`.
    """

    runner: Any
    bank: Any
    bank_path: Path
    self_reference: bool
    tail_classes: list[str]
    config: Any
    run_config: dict[str, Any] = field(default_factory=dict)


def assemble_run(
    *,
    sensor: str,
    out_dir: str | os.PathLike[str],
    backend: str = "warp",
    preset: str = "realistic",
    seed: int = 0,
    max_retries: int = 3,
    tail_percentile: float = 20.0,
    target_per_class: int | None = None,
    bank_path: str | os.PathLike[str] | None = None,
    real_dir: str | os.PathLike[str] | None = None,
    self_reference_frames: int | None = None,
    gate_config: str | os.PathLike[str] | None = None,
    gate_overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
    resume: bool = False,
    stats: Any = None,
    launched_by: str | None = None,
    wrap_source: Callable[[Any], Any] | None = None,
    names: SettingNames = CLI_NAMES,
    scan_options: Mapping[str, Any] | None = None,
    rotation_rate_hz: float | None = None,
    pipeline: bool = False,
    calib: str | os.PathLike[str] | None = None,
    run_extra: Mapping[str, Any] | None = None,
) -> RunAssembly:
    """Assemble bank, gate, focus plan and runner for a generation run (renders nothing of the run).

    Args:
        sensor: sensor profile name or TOML path.
        out_dir: the run directory.
        backend, preset: scene source and its effect preset.
        seed, max_retries: see :class:`~simgap_ext.pipeline.GenerationRunner`.
        tail_percentile, target_per_class: see :func:`tail_plan`.
        bank_path, real_dir, self_reference_frames: the reference (first given wins; see :func:`obtain_bank`).
        gate_config, gate_overrides: gate TOML and field overrides.
        device: Warp device (resolved already).
        resume: continue the run in ``out_dir``.
        stats: an empty :class:`~simgap_ext.pipeline.stats.AcceptanceStats` to record into.
        launched_by: recorded in ``run.json`` (e.g. ``"kit-extension"``).
        wrap_source: wraps the scene source (the Kit batch's cancellation).
        names: how errors name the inputs.
        scan_options: how the real scans are read (``label_map``, ``layout``, ``columns``; see
            :func:`~simgap_ext.data.iter_scans`).
        rotation_rate_hz: warp backend: the sensor's spin rate (default: the profile's).
        pipeline: render the next attempt on a worker thread while the gate checks this one (never for a
            source that must stay on Kit's main thread); see :class:`~simgap_ext.pipeline.GenerationRunner`.
        calib: a ``calib.toml`` from ``simgap calibrate --out``: its per-class Chamfer ``d_max`` floors are applied
            to the bank (its hash is recorded in ``run.json``, so a resume with another calibration is refused).
        run_extra: more settings recorded in ``run.json`` and compared on resume (the Kit batch's sensor-effect
            profile and its hash).

    Raises:
        SimGapInputError: unusable inputs, a directory holding a run without ``resume`` or files SimGap did not
            write, a bank of another sensor.
    """
    from ..backends import get_scene_source
    from ..gate import FrameGate, load_gate_config
    from .runner import GenerationRunner

    sensor_name = resolve_sensor(sensor, names)
    run_dir = RunDir(out_dir)
    if not resume and (run_dir.run_config.exists() or run_dir.run_config.is_symlink()):
        raise SimGapInputError(f"{run_dir.path} already holds a generation run; {names.resume_hint}")
    if not (resume and run_dir.read_owner(run_dir.run_config) is not None):
        # Before any bank work: a fresh run may not overwrite (nor build a bank next to) files of SimGap's names.
        cache = run_dir.bank_cache
        present = cache.exists() or cache.is_symlink()
        run_dir.check_fresh(bank_cache_ok=bank_path is not None or not present or _is_our_cache(cache, run_dir))
    config = load_gate_config(gate_config, **dict(gate_overrides or {}))
    with run_dir.lock():
        bank, path, ident, self_ref = obtain_bank(
            run_dir,
            sensor=sensor,
            config=config,
            device=device,
            resume=resume,
            bank_path=bank_path,
            real_dir=real_dir,
            self_reference_frames=self_reference_frames,
            preset=preset,
            names=names,
            scan_options=scan_options,
        )
        if calib is not None:
            from ..metrics.sensor_calibration import read_calibration
            from .runner import fingerprint_file

            bank = bank.with_sensor_calibration(read_calibration(calib))
            ident["calib_sha256"] = fingerprint_file(Path(calib))
    extra = {"rotation_rate_hz": rotation_rate_hz} if backend == "warp" and rotation_rate_hz else {}
    source = get_scene_source(backend, sensor=sensor, preset=preset, device=device, **extra)
    check_same_sensor(bank, str(getattr(source, "sensor_name", sensor_name)), config, names)
    tails, plan = tail_plan(
        bank,
        tail_percentile,
        renderable=list(getattr(source, "class_names", ()) or ()),
        target_per_class=target_per_class,
    )
    run_config = {
        "backend": backend,
        "preset": preset,
        "sensor_profile": sensor,
        "tail_percentile": tail_percentile,
        "target_per_class": target_per_class,
        "gate_config": config.to_dict(),
        # Only when set, so that the run.json (and run id) of a run at the profile's rate stays as it was.
        **extra,
        **({"launched_by": launched_by} if launched_by else {}),
        **dict(run_extra or {}),
        **ident,
    }
    runner = GenerationRunner(
        wrap_source(source) if wrap_source is not None else source,
        FrameGate(bank, config, device=device),
        run_dir.path,
        stats=stats,
        tail_classes=tails,
        max_retries=max_retries,
        focus_plan=plan,
        seed=seed,
        run_config=run_config,
        pipeline=pipeline,
    )
    return RunAssembly(runner, bank, path, self_ref, tails, config, run_config)


def assemble_sink(
    output_dir: str | os.PathLike[str],
    *,
    bank_path: str | os.PathLike[str],
    sensor: str | None = None,
    gate_config: str | os.PathLike[str] | None = None,
    device: str | None = None,
    stats: Any = None,
    tail_classes: Sequence[str] | None = None,
    tail_percentile: float = 20.0,
    max_retries: int = 3,
    on_rerandomize: Callable[..., None] | None = None,
    gate_overrides: Mapping[str, Any] | None = None,
) -> Any:
    """A :class:`~simgap_ext.replicator.sink.GatedExportSink` over a saved bank (the Replicator writer's path).

    Args:
        output_dir: export root.
        bank_path: a ``ReferenceBank.save`` file.
        sensor: the frames' sensor profile name; a bank of another sensor is refused (``None``/"unknown": not
            checked).
        tail_classes: explicit tail classes (default: :func:`tail_plan` of the bank at ``tail_percentile``).
        Others: see :func:`assemble_run`.
    """
    from ..gate import FrameGate, ReferenceBank, load_gate_config
    from ..replicator.sink import GatedExportSink

    names = SettingNames(sensor="sensor", bank="bank_path", real="real_dir", out="output_dir")
    path = Path(bank_path).expanduser()
    if not path.is_file():
        raise SimGapInputError(f"bank_path: no such file {path}")
    bank = ReferenceBank.load(path)
    config = load_gate_config(gate_config, **dict(gate_overrides or {}))
    if sensor:
        # Not resolved to a profile: a Replicator sensor may be an RTX model name SimGap has no profile for.
        check_same_sensor(bank, str(sensor), config, names)
    tails = list(tail_classes) if tail_classes is not None else tail_plan(bank, tail_percentile)[0]
    return GatedExportSink(
        FrameGate(bank, config, device=device),
        output_dir,
        stats=stats,
        tail_classes=tails,
        max_retries=max_retries,
        on_rerandomize=on_rerandomize,
    )
