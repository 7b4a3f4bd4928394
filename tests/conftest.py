"""Fixtures shared by several test files: a small real-pipeline reference bank (vlp-16), and the eight real nuScenes
keyframes of ``tests/data`` with a bank of seven of them.

The banks are built the way a user builds one (scans -> :meth:`ReferenceBank.build`), once per test session, so that
tests of the run directory, the CLI, the fuzzing and the gate's class tests do not each build their own. Tests only
read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class SmallBank:
    """A vlp-16 reference bank built from ``frames`` rendered scans.

    Attributes:
        path: the bank file (do not modify: copy it).
        real_dir: the SemanticKITTI sequence it was built from.
        frames: scans in it.
    """

    path: Path
    real_dir: Path
    frames: int


@pytest.fixture(scope="session")
def small_bank(tmp_path_factory) -> SmallBank:
    """A 3-scan vlp-16 bank (embedded backend, realistic preset, seed 4200) on the CPU."""
    from simgap_ext.cli import main
    from simgap_ext.data import iter_scans
    from simgap_ext.gate import ReferenceBank, load_gate_config

    root = tmp_path_factory.mktemp("small_bank")
    real = root / "seq"
    assert main(["render", "--sensor", "vlp-16", "--preset", "realistic", "--frames", "3", "--seed", "4200",
                 "--out", str(real), "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    bank = ReferenceBank.build(
        iter_scans(real, sensor="vlp-16"), sensor="vlp-16", config=load_gate_config(), device="cpu"
    )
    return SmallBank(bank.save(root / "bank.npz"), real, 3)


_DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def keyframes():
    """The eight real nuScenes keyframes of tests/data, (name, frame) in a fixed order."""
    from simgap_ext.gate.realsets import iter_real_scans

    scans = [s for d in ("nuscenes", "nuscenes_hdl32", "nuscenes_joint") for s in iter_real_scans(_DATA / d)]
    assert [n for n, _ in scans] == ["data0", "data1", "data30", "data31", "data32", "data33", "data34", "data35"]
    return scans


@pytest.fixture(scope="session")
def bank7(keyframes):
    """A bank of the keyframes but data35, with the shipped gate configuration."""
    from simgap_ext.gate import ReferenceBank, load_gate_config

    return ReferenceBank.build(keyframes[:-1], config=load_gate_config(), device="cpu")
