"""Does the trained segmentation encoder separate classes better than the default random-feature backbone?

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_active_backbone.py [--steps 300] [--seed 0]

On the 40 consecutive nuScenes-lidarseg keyframes of ``../shared/realdata/nuscenes_lidarseg_cascol`` (HDL-32E):
trains :class:`~simgap_ext.active.model.RangeSegNet` on keyframes 10-39 (16 lidarseg classes), exports its
encoder with :func:`~simgap_ext.active.backbone.export_backbone`, and embeds the object instances of the held-out
keyframes 0-9 (the only stretch with cars besides trucks and pedestrians) with both backbones. nuScenes-lidarseg has no instance ids, so instances are the connected
components (0.6 m linkage, at least 8 points) of each object class's points. For every pair of object classes
with enough instances it prints the JS divergence (bits, :func:`~simgap_ext.metrics.semantic.semantic_alignment`,
the semantic check's own statistic) between their embedding distributions: higher = better separated.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

OBJECTS = ("car", "pedestrian", "barrier", "traffic_cone", "truck", "bicycle", "motorcycle", "bus")


def _components(points: np.ndarray, radius: float) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
    n = len(points)
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def instance_frames(samples, cache, vocab, min_points: int = 8) -> list[dict]:
    """Frames of the object classes' points with connected-component instance ids."""
    from simgap_ext.frame import make_frame

    frames = []
    for s in samples:
        pts = cache.points(s)[:, :3]
        lab = cache.labels(s, vocab)
        inst = np.zeros(len(pts), dtype=np.int64)
        next_id = 1
        for name in OBJECTS:
            c = vocab.index(name)
            idx = np.flatnonzero(lab == c)
            if idx.size < min_points:
                continue
            comp = _components(pts[idx], 0.6)
            for k in np.unique(comp):
                members = idx[comp == k]
                if members.size >= min_points:
                    inst[members] = next_id
                    next_id += 1
        keep = inst > 0
        sem = np.where(keep, lab + 1, 0)[keep]
        names = {i + 1: n for i, n in enumerate(vocab.names)}
        frames.append(make_frame(pts[keep], sem, inst[keep], names, frame_id=len(frames)))
    return frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--realdata", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    import bench_active_learning as bal

    from simgap_ext.active.backbone import export_backbone
    from simgap_ext.active.dataset import ClassVocabulary, ScanCache, load_samples
    from simgap_ext.active.training import TrainConfig, set_torch_threads, train_and_evaluate
    from simgap_ext.metrics.features import FrozenBackbone, instance_features
    from simgap_ext.metrics.semantic import semantic_alignment

    set_torch_threads(args.threads)
    src = (args.realdata or bal._default_realdata()) / "nuscenes_lidarseg_cascol"
    if not src.is_dir():
        print(f"skipped: {src} not found")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        bal.nuscenes_data(Path(tmp), {"seed_scans": 0, "pool": 0}, src)
        samples = load_samples(Path(tmp) / "nuscenes")
        train, held = samples[10:], samples[:10]
        cache = ScanCache()
        vocab = ClassVocabulary(sorted(set(bal.NUSCENES_CLASSES.values())))
        t = time.time()
        cfg = TrainConfig(epochs=1, min_steps=args.steps, seed=args.seed)
        model, metrics = train_and_evaluate(train, held, vocab=vocab, sensor="hdl-32", config=cfg, cache=cache,
                                            width=args.width)  # fmt: skip
        print(f"trained {args.steps} steps in {time.time() - t:.0f} s; held-out mIoU {metrics.miou:.3f}")
        path = export_backbone(model, Path(tmp) / "backbone.pt")
        size_kb = path.stat().st_size / 1024
        frames = instance_frames(held, cache, vocab)
        backbones = {
            "default (random features)": FrozenBackbone(),
            "trained RangeSegNet": FrozenBackbone.from_torchscript(path),
        }
        feats = {}
        for name, bb in backbones.items():
            per: dict[str, list[np.ndarray]] = {}
            for f in frames:
                for c, e in instance_features(f, bb).items():
                    per.setdefault(c, []).append(e)
            feats[name] = {c: np.concatenate(v) for c, v in per.items()}
        counts = {c: len(v) for c, v in feats["trained RangeSegNet"].items()}
        print(f"instances in held-out keyframes: {counts}; exported backbone {size_kb:.0f} KiB")
        classes = [c for c in OBJECTS if counts.get(c, 0) >= 5]
        print("\n| class pair | JS default (bits) | JS trained (bits) |\n|---|---|---|")
        wins = 0
        pairs = list(itertools.combinations(classes, 2))
        for a, b in pairs:
            js = []
            for name in backbones:
                fa, fb = feats[name][a], feats[name][b]
                js.append(semantic_alignment({"x": fa}, {"x": fb}, adaptive_bins=True).per_class["x"])
            wins += js[1] > js[0]
            print(f"| {a} vs {b} | {js[0]:.3f} | {js[1]:.3f} |")
        print(f"\ntrained backbone separates better in {wins}/{len(pairs)} class pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
