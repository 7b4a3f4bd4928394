"""Seeded fuzzing of the commands: malformed gate/sensor TOML, banks, run.json, manifests and command lines.

Every case runs in-process through ``simgap_ext.cli.main`` and must end in exit 0, or exit 2 with exactly one
``simgap: error: ...`` line: never a traceback (exit 1, or an exception out of ``main``) and never a hang (each case
runs under a 20 s alarm). The readers' own fuzzing (LAS/PLY/PCD/NPY headers) lives with the readers.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from _timeouts import fail_after  # noqa: E402  (tests/ helper module)

from simgap_ext.cli import main

SEED = 20261128
_CASE_LIMIT_S = 20

_SCALARS = ["5", "-1", "0", "1.5", "nan", "inf", "-inf", "1e308", '"x"', '""', "true", "[]", "{}", "[1, 2]",
            '{ a = 1 }', '["a", 3]', "1979-05-27", "0x10", "18446744073709551617"]  # fmt: skip
_JSON_VALUES: list = [None, True, -1, 0, 2.5, 1e308, "x", "", [], {}, [1, 2], {"a": 1}, 10**30, ["x"], {"k": "v"}]


def _run(argv: list[str], label: str) -> int:
    err = io.StringIO()
    out = io.StringIO()
    with fail_after(_CASE_LIMIT_S), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except BaseException as exc:  # noqa: BLE001 - any escape is the failure being looked for
            pytest.fail(f"{label}: {type(exc).__name__} escaped main({argv[:6]}...): {str(exc)[:300]}")
    text = err.getvalue()
    assert "Traceback" not in text, f"{label}: traceback\n{text[-2000:]}"
    assert rc in (0, 2), f"{label}: exit {rc}\n{text[-2000:]}"
    if rc == 2:
        lines = [ln for ln in text.splitlines() if ln.startswith("simgap:")]
        assert len(lines) == 1 and lines[0].startswith("simgap: error: "), f"{label}: {text[-2000:]}"
    return rc


def _random_toml(rng: random.Random, keys: list[str], tables: list[str]) -> str:
    lines = []
    for _ in range(rng.randint(0, 6)):
        r = rng.random()
        if r < 0.15:
            lines.append(f"[{rng.choice(tables)}]")
        elif r < 0.85:
            lines.append(f"{rng.choice(keys)} = {rng.choice(_SCALARS)}")
        elif r < 0.92:
            depth = rng.choice([10, 500, 5000])
            lines.append(f"{rng.choice(keys)} = " + "[" * depth + "]" * depth)
        else:
            lines.append("".join(chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(1, 30))))
    return "\n".join(lines) + "\n"


def _mutate_json(rng: random.Random, doc):
    """``doc`` with one random value replaced (or the whole document, or a deep nesting)."""
    r = rng.random()
    if r < 0.1:
        return rng.choice(_JSON_VALUES)
    if r < 0.15:
        return [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]
    if isinstance(doc, dict) and doc:
        key = rng.choice(sorted(doc))
        return {**doc, key: _mutate_json(rng, doc[key]) if rng.random() < 0.5 else rng.choice(_JSON_VALUES)}
    if isinstance(doc, list) and doc:
        i = rng.randrange(len(doc))
        return [*doc[:i], _mutate_json(rng, doc[i]), *doc[i + 1 :]]
    return rng.choice(_JSON_VALUES)


def _gate_cases(rng: random.Random, tmp: Path, bank: Path) -> Iterator[tuple[list[str], str]]:
    import dataclasses

    from simgap_ext.gate.config import GateConfig

    keys = [f.name for f in dataclasses.fields(GateConfig)] + ["gate", "nope"]
    for i in range(70):
        p = tmp / f"gate{i}.toml"
        p.write_text(_random_toml(rng, keys, ["gate", "gate.object_weights", "x"]), encoding="utf-8", errors="replace")
        yield ["budget", "--bank", str(bank), "--target-per-class", "5", "--gate-config", str(p)], f"gate toml {i}"


def _sensor_cases(rng: random.Random, tmp: Path) -> Iterator[tuple[list[str], str]]:
    base = (Path(__file__).resolve().parents[1] / "config" / "sensors" / "vlp-16.toml").read_text()
    keys = ["channels", "vertical_angles_deg", "horizontal_resolution", "max_range", "min_range", "name",
            "max_expected_distance", "mount_height", "presets", "dropout"]  # fmt: skip
    empty = tmp / "no_scans"
    empty.mkdir(exist_ok=True)
    for i in range(50):
        p = tmp / f"sensor{i}.toml"
        # Half: the real profile with random lines appended (duplicate keys, bad types, huge declared sizes).
        text = (base if rng.random() < 0.5 else "") + _random_toml(rng, keys, ["presets.realistic", "presets"])
        if rng.random() < 0.2:
            text += "channels = 1024\nhorizontal_resolution = 1000000000\n"
        p.write_text(text, encoding="utf-8", errors="replace")
        yield (
            ["reference", "build", "--real", str(empty), "--out", str(tmp / "b.npz"), "--sensor", str(p)],
            (f"sensor toml {i}"),
        )


def _bank_cases(rng: random.Random, tmp: Path, bank: Path) -> Iterator[tuple[list[str], str]]:
    raw = bank.read_bytes()
    with np.load(bank, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["__meta__"]).decode())
    for i in range(50):
        p = tmp / f"bank{i}.npz"
        kind = i % 4
        if kind == 0:  # flipped bytes / truncation of the zip itself
            data = bytearray(raw)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            p.write_bytes(bytes(data[: rng.randint(0, len(data))] if rng.random() < 0.3 else data))
        else:
            doc = {**arrays}
            if kind == 1:
                doc["__meta__"] = np.frombuffer(json.dumps(_mutate_json(rng, header)).encode(), dtype=np.uint8)
            elif kind == 2:
                name = rng.choice(sorted(k for k in arrays if k != "__meta__"))
                a = arrays[name]
                doc[name] = rng.choice([
                    a.astype(np.float64) * np.nan,
                    a[: max(0, a.shape[0] - 1)],
                    np.zeros((3, 3, 3)),
                    np.array(["x"] * 3),
                    -np.abs(a.astype(np.int64)) - 1,
                ])  # fmt: skip
            else:
                doc["__meta__"] = rng.choice([np.zeros(4), np.array(["x"]), np.frombuffer(b"\xff\xfe", np.uint8)])
            buf = io.BytesIO()
            np.savez(buf, **doc)
            p.write_bytes(buf.getvalue())
        yield ["reference", "show", str(p)], f"bank {i} (kind {kind})"
        if i % 5 == 0:
            yield ["budget", "--bank", str(p), "--target-per-class", "3"], f"budget bank {i}"


def _run_json_cases(rng: random.Random, tmp: Path, bank: Path) -> Iterator[tuple[list[str], str]]:
    good = {"format": 1, "run_id": "0123456789abcdef", "seed": 0, "sensor": "vlp-16", "max_retries": 0}
    for i in range(30):
        d = tmp / f"run{i}"
        d.mkdir()
        (d / "run.json").write_text(
            json.dumps(_mutate_json(rng, good)) if rng.random() < 0.8 else rng.choice(["[1,2]", "nul", "[" * 100000])
        )
        (d / "manifest.jsonl").write_text("")
        yield ["generate", "--sensor", "vlp-16", "--frames", "0", "--bank", str(bank), "--out", str(d),
               "--resume", "--device", "cpu", "--no-progress"], f"run.json {i}"  # fmt: skip


def _manifest_cases(rng: random.Random, tmp: Path) -> Iterator[tuple[list[str], str]]:
    from simgap_ext.data.manifest import make_row

    rows = [
        make_row(domain="synthetic", sensor="vlp-16", decision="accepted", path=f"velodyne/{k:06d}.bin",
                 label_path=f"labels/{k:06d}.label", index=k, seed=k, frame_id=k, class_points={"car": 10},
                 class_instances={"car": 1}, g={"car": 0.9}, js={"car": 0.1}, run_id="ab" * 8)
        for k in range(3)
    ]  # fmt: skip
    real = tmp / "real.jsonl"
    real.write_text(
        "".join(
            json.dumps(make_row(domain="real", sensor="vlp-16", decision="accepted", path=f"r/{k}.bin",
                                class_points={"car": 5}, class_instances={"car": 1})) + "\n"
            for k in range(4)
        )
    )  # fmt: skip
    for i in range(60):
        d = tmp / f"man{i}"
        d.mkdir()
        lines = [json.dumps(r) for r in rows]
        r = rng.random()
        if r < 0.4:
            j = rng.randrange(len(lines))
            lines[j] = json.dumps(_mutate_json(rng, rows[j]))
        elif r < 0.55:
            lines.append(lines[rng.randrange(len(lines))])  # duplicated attempt and index
        elif r < 0.7:
            lines.insert(rng.randrange(len(lines)), "[" * rng.choice([10, 100000]) + "]" * 10)
        elif r < 0.8:
            lines[rng.randrange(len(lines))] = '{"g": NaN, "scene_g": Infinity}'
        else:
            data = bytearray("\n".join(lines).encode())
            for _ in range(rng.randint(1, 5)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            lines = [data.decode("utf-8", errors="replace")]
        (d / "manifest.jsonl").write_text("\n".join(lines) + "\n")
        yield ["mix", "--real", str(real), "--synthetic", str(d), "--out", str(d / "mix")], f"manifest {i}"


def _argv_cases(rng: random.Random, tmp: Path) -> Iterator[tuple[list[str], str]]:
    commands = ["generate", "budget", "mix", "report", "manifest", "reference", "score", "calibrate", "bogus", ""]
    flags = ["--sensor", "--frames", "--bank", "--real", "--out", "--seed", "--max-retries", "--tail-percentile",
             "--target-per-class", "--acceptance-rate", "--frames-per-hour", "--ratio", "--val-fraction",
             "--percentile", "--quantile", "--device", "--resume", "--json", "--synthetic", "-v", "--help",
             "--version", "--gate-config", "--limit"]  # fmt: skip
    empty = tmp / "argv_empty"
    empty.mkdir()
    values = ["-1", "0", "nan", "inf", "1e400", "x", "", "vlp16", "vlp-16", str(tmp / "missing"), str(empty),
              "\x00", "é" * 3, "9" * 40, "-", "--", "cuda:7", "0.0"]  # fmt: skip
    for i in range(70):
        argv = [rng.choice(commands)] if rng.random() < 0.95 else []
        if argv and argv[0] == "reference":
            argv.append(rng.choice(["build", "show", "x"]))
        for _ in range(rng.randint(0, 6)):
            argv.append(rng.choice(flags))
            if rng.random() < 0.8:
                argv.append(rng.choice(values))
        if "-v" in argv:  # verbose re-raises on purpose (a developer's traceback)
            argv.remove("-v")
        yield [a for a in argv if a != "\x00"], f"argv {i}"


def test_fuzz_every_command_input_ends_cleanly(small_bank, tmp_path):
    rng = random.Random(SEED)
    generators: list[Callable[[], Iterator[tuple[list[str], str]]]] = [
        lambda: _gate_cases(rng, tmp_path, small_bank.path),
        lambda: _sensor_cases(rng, tmp_path),
        lambda: _bank_cases(rng, tmp_path, small_bank.path),
        lambda: _run_json_cases(rng, tmp_path, small_bank.path),
        lambda: _manifest_cases(rng, tmp_path),
        lambda: _argv_cases(rng, tmp_path),
    ]
    codes: dict[int, int] = {}
    n = 0
    for make in generators:
        for argv, label in make():
            rc = _run(argv, label)
            codes[rc] = codes.get(rc, 0) + 1
            n += 1
    assert n >= 300
    assert codes.get(2, 0) > n // 2  # the inputs are malformed: most must be refused, not silently accepted
