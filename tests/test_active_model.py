"""Range projection, RangeSegNet, the MC-Dropout patch, training steps and the backbone export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simgap_ext.active.backbone import CropEncoder, export_backbone  # noqa: E402
from simgap_ext.active.mc_dropout import mc_dropout, mc_predict  # noqa: E402
from simgap_ext.active.model import RangeSegNet, build_model  # noqa: E402
from simgap_ext.active.projection import beam_elevations, pixel_index, range_image  # noqa: E402
from simgap_ext.active.training import train_step  # noqa: E402
from simgap_ext.sensors import load_sensor_profile  # noqa: E402

torch.set_num_threads(1)
NUSCENES = Path(__file__).parent / "data" / "nuscenes_lidarseg" / "data0"


def _nuscenes() -> np.ndarray:
    return np.fromfile(NUSCENES / "points.bin", dtype=np.float32).reshape(-1, 5)


def test_projection_round_trips_every_point_and_keeps_the_nearest():
    el = beam_elevations([10.0, 0.0, -10.0])
    # two points in one pixel (same direction, 5 m and 9 m), one alone
    pts = torch.tensor([[5.0, 0.0, 0.0, 0.1], [9.0, 0.0, 0.0, 0.9], [0.0, 7.0, -1.2, 0.4]])
    img, pix = range_image(pts, el, 8)
    assert pix.shape == (3,) and int(pix[0]) == int(pix[1]) != int(pix[2])
    flat = img.reshape(img.shape[0], -1)
    assert float(flat[1, pix[0]]) == pytest.approx(5.0 / 50.0)  # the nearest wins
    assert float(flat[5, pix[0]]) == pytest.approx(0.1)
    assert float(flat[0].sum()) == 2.0  # two occupied pixels
    # brute-force row: nearest beam elevation; column: azimuth measured from -x, clockwise
    xyz = pts[:, :3].numpy().astype(np.float64)
    elev = np.degrees(np.arcsin(xyz[:, 2] / np.linalg.norm(xyz, axis=1)))
    rows = np.argmin(np.abs(elev[:, None] - np.array([10.0, 0.0, -10.0])[None]), axis=1)
    cols = np.floor((np.pi - np.arctan2(xyz[:, 1], xyz[:, 0])) / (2 * np.pi) * 8).astype(int)
    np.testing.assert_array_equal(pix.numpy(), rows * 8 + cols)


def test_model_gives_every_point_its_pixels_prediction_on_a_real_scan():
    a = _nuscenes()
    model = build_model(4, "hdl-32", width=128).eval()
    pts = torch.from_numpy(np.ascontiguousarray(a[:, :4]))
    with torch.no_grad():
        logits = model(pts)
        img, pix = range_image(pts, model.elevations, 128)
        per_pixel = model.forward_image(img[None])[0].reshape(4, -1)
    assert logits.shape == (len(a), 4)
    assert pix.min() >= 0 and pix.max() < 32 * 128
    torch.testing.assert_close(logits, per_pixel[:, pix].t())
    shared = pix == pix[0]
    assert int(shared.sum()) > 1  # this scan has points sharing the first point's pixel...
    torch.testing.assert_close(logits[shared], logits[0].expand(int(shared.sum()), 4))  # ...with one prediction


def test_hdl32_beam_table_recovers_the_real_scans_ring_index():
    a = _nuscenes()
    prof = load_sensor_profile("hdl-32")
    row = pixel_index(torch.from_numpy(np.ascontiguousarray(a[:, :3])), beam_elevations(prof.vertical_angles_deg), 64)
    row = (row // 64).numpy()
    ring = a[:, 4].astype(int)  # nuScenes ring 0 is the lowest beam, the profile's beam 0 the highest
    assert np.corrcoef(row, 31 - ring)[0, 1] > 0.9
    assert (row == 31 - ring).mean() > 0.6


def test_range_image_validates_input():
    el = beam_elevations([1.0, -1.0])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        range_image(torch.zeros(5, 2), el, 8)
    with pytest.raises(ValueError, match="strictly decreasing"):
        beam_elevations([-1.0, 1.0])
    with pytest.raises(ValueError, match="multiple of 4"):
        RangeSegNet(3, [1.0, -1.0], width=10)


def _tiny(num_classes: int = 3) -> RangeSegNet:
    torch.manual_seed(0)
    return RangeSegNet(num_classes, [2.0, 0.0, -2.0, -4.0], width=16, base=4, dropout=0.3)


def _points(n: int = 200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g) * torch.tensor([8.0, 8.0, 0.3, 0.2]) + torch.tensor([0, 0, -0.3, 0.5])


def test_mc_dropout_patch_samples_dropout_only_and_restores_the_model_exactly():
    model = _tiny()
    model.train()
    model.enc2.eval()  # a mixed set of flags must come back as it was
    flags = {n: m.training for n, m in model.named_modules()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pts = _points()
    with mc_dropout(model) as m:
        assert not m.enc1.bn1.training and m.drop_bottleneck.training and m.drop_decoder.training
        with torch.no_grad():
            a, b = m(pts), m(pts)
        assert not torch.allclose(a, b)  # dropout samples
        for k, v in m.state_dict().items():  # batch norm statistics were not updated
            torch.testing.assert_close(v, before[k])
    assert {n: m.training for n, m in model.named_modules()} == flags
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(pts), model(pts))


def test_mc_dropout_restores_after_an_exception_and_refuses_models_without_dropout():
    model = _tiny().eval()
    with pytest.raises(RuntimeError, match="boom"), mc_dropout(model):
        raise RuntimeError("boom")
    assert not model.drop_bottleneck.training
    with pytest.raises(ValueError, match="dropout"), mc_dropout(torch.nn.Linear(3, 2)):
        pass


def test_mc_predict_probabilities_match_one_pass_at_a_time():
    model = _tiny().eval()
    pts = _points()
    torch.manual_seed(3)
    p = mc_predict(model, pts, passes=7, chunk=3)
    assert p.shape == (200, 3, 7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert p.std(axis=2).max() > 0  # passes differ
    # the fast batched path equals the generic per-pass path for a deterministic model (dropout p = 0)
    det = RangeSegNet(3, [2.0, 0.0, -2.0, -4.0], width=16, base=4, dropout=0.0).eval()
    det.drop_decoder.p = 1e-9  # "has dropout" but never drops in practice
    with torch.no_grad():
        ref = torch.softmax(det(pts), dim=1).numpy()
    np.testing.assert_allclose(mc_predict(det, pts, passes=2)[:, :, 1], ref, rtol=1e-4, atol=1e-5)


def test_a_training_step_lowers_the_loss_on_a_fixed_batch():
    model = _tiny()
    pts = _points(300)
    labels = (pts[:, 0] > 0).long() + (pts[:, 1] > 0).long()
    labels[:10] = -1  # ignored points
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = train_step(model, opt, pts, labels)
    for _ in range(10):
        last = train_step(model, opt, pts, labels)
    model.train()
    with torch.no_grad():
        torch.manual_seed(0)
        after = float(torch.nn.functional.cross_entropy(model(pts), labels, ignore_index=-1))
    assert last < first and after < first
    assert np.isnan(train_step(model, opt, pts, torch.full((300,), -1)))


def test_exported_backbone_is_a_torchscript_plugin_for_the_gate(tmp_path):
    from simgap_ext.metrics.features import FrozenBackbone

    model = _tiny().eval()
    path = export_backbone(model, tmp_path / "bb.pt")
    bb = FrozenBackbone.from_torchscript(path)
    crop = _points(40, seed=2)[:, :3].numpy() + np.array([6.0, 1.0, 0.0], np.float32)
    emb = bb.embed(crop)
    with torch.no_grad():
        ref = CropEncoder(model)(torch.from_numpy(crop)[None])[0].numpy()
    assert emb.shape == (2 * model.base,)
    np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-6)
    assert bb.embed(crop[:5]).shape == emb.shape  # other crop sizes work after tracing


def test_cached_image_augmentation_equals_projecting_the_rotated_mirrored_scan():
    from simgap_ext.active.training import _projected_step_input

    model = _tiny()
    model.width = 32
    pts = _points(300, seed=4)
    img, pix = range_image(pts, model.elevations, 32)
    rng = np.random.default_rng(0)
    for _ in range(4):
        state = rng.bit_generator.state
        aug_img, aug_pix = _projected_step_input(model, img, pix, rng)
        rng2 = np.random.default_rng()
        rng2.bit_generator.state = state
        k = int(rng2.integers(32))
        theta = -2 * np.pi * k / 32
        flip = rng2.random() < 0.5
        p = pts.clone()
        c, s = np.cos(theta), np.sin(theta)
        p[:, 0], p[:, 1] = c * pts[:, 0] - s * pts[:, 1], s * pts[:, 0] + c * pts[:, 1]
        if flip:
            p[:, 1] = -p[:, 1]
        ref_img, ref_pix = range_image(p, model.elevations, 32)
        # the same points share pixels, the nearest point's features are in the image
        same = (aug_pix == ref_pix).float().mean()
        assert same > 0.97  # azimuths on a column boundary may fall either side after rounding
        ok = aug_pix == ref_pix
        torch.testing.assert_close(aug_img.reshape(6, -1)[:, aug_pix[ok]], ref_img.reshape(6, -1)[:, ref_pix[ok]],
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
