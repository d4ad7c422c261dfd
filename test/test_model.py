"""DKPNet: building blocks, conventions, weight loading and the detector wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import deform_conv2d

from dkp_slam.config import FrontEndConfig
from dkp_slam.features import create_detector
from dkp_slam.model import DKPNet, count_parameters, extract_keypoints, sample_descriptors
from dkp_slam.model.dkpnet import box_max, deform_conv3x3_grid_sample, merge_conf, peakiness
from dkp_slam.model.weights import WeightsError, load_model, save_model


@pytest.mark.parametrize("weight_shape", [(5, 8, 3, 3), (8, 1, 3, 3), (8, 2, 3, 3)])
def test_grid_sample_dcn_equals_torchvision(weight_shape) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 12, 16, generator=g)
    offset = torch.randn(2, 18, 12, 16, generator=g) * 3  # many samples fall outside
    mask = torch.rand(2, 9, 12, 16, generator=g)
    weight = torch.randn(*weight_shape, generator=g)
    ref = deform_conv2d(x, offset, weight, padding=(1, 1), mask=mask)
    out = deform_conv3x3_grid_sample(x, offset, mask, weight)
    assert torch.allclose(ref, out, atol=1e-4)


def test_dcn_impls_give_same_network_output() -> None:
    torch.manual_seed(0)
    net = DKPNet().eval()
    with torch.no_grad():  # non-zero offsets so that the deformable sampling matters
        net.deform.offset_mask.weight.normal_(0, 0.05)
    img = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        a = net(img)
        net.deform.impl = "torchvision"
        b = net(img)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4), k


@pytest.mark.parametrize("conf", [{}, {"multiscale": False}, {"dcn": False},
                                  {"attention": False}, {"peakiness": True},
                                  {"multiscale": False, "dcn": False, "attention": False}])
def test_output_contract(conf) -> None:
    net = DKPNet(conf).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, 48, 64))
    assert out["score_logits"].shape == (2, 1, 48, 64)
    assert out["scores"].shape == (2, 1, 48, 64)
    assert float(out["scores"].min()) >= 0 and float(out["scores"].max()) <= 1
    d = out["descriptor_map"]
    assert d.shape == (2, 64, 6, 8)
    assert torch.allclose(d.norm(dim=1), torch.ones(2, 6, 8), atol=1e-4)
    w = net.fusion_weights()
    assert torch.isclose(w.sum(), torch.tensor(1.0))
    assert count_parameters(net) <= 1_500_000


def test_conf_errors() -> None:
    with pytest.raises(KeyError, match="unknown DKPNet option"):
        merge_conf({"no_such_option": 1})
    with pytest.raises(ValueError, match="dcn_impl"):
        merge_conf({"dcn_impl": "cuda_magic"})
    net = DKPNet()
    with pytest.raises(ValueError, match="multiple of 8"):
        net(torch.rand(1, 1, 30, 64))
    with pytest.raises(ValueError, match=r"\(B,1,H,W\)"):
        net(torch.rand(1, 3, 32, 64))


def test_sample_descriptors_pixel_centre_convention() -> None:
    # A map whose channels hold the cell's centre pixel coordinates (stride 8): sampling at a
    # cell centre returns that centre, halfway between two centres returns the midpoint.
    h, w, s = 4, 6, 8
    jj, ii = torch.meshgrid(torch.arange(w), torch.arange(h), indexing="xy")
    cu, cv = s * jj + (s - 1) / 2, s * ii + (s - 1) / 2
    dmap = torch.stack([cu, cv, torch.full_like(cu, 1000.0)]).float()[None]
    pts = torch.tensor([[[3.5, 3.5], [11.5, 19.5], [7.5, 3.5]]])
    # undo the L2 normalisation with the known third channel
    d = sample_descriptors(dmap, pts, (h * s, w * s))[0]
    uv = d[:, :2] / d[:, 2:] * 1000.0
    assert torch.allclose(uv, pts[0], atol=1e-3)


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_box_max_equals_max_pool(radius) -> None:
    x = torch.randn(37, 53)
    x[5:9, 7:20] = 2.0  # plateaus: ties
    ref = torch.nn.functional.max_pool2d(x[None, None], 2 * radius + 1, 1, radius)[0, 0]
    assert torch.equal(box_max(x, radius), ref)
    assert torch.equal(-box_max(-x, radius), -torch.nn.functional.max_pool2d(
        -x[None, None], 2 * radius + 1, 1, radius)[0, 0])


def test_extract_keypoints_subpixel_and_nms() -> None:
    H, W = 64, 96
    v, u = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    peaks = [(20.3, 30.6), (50.0, 10.0), (21.0, 33.0)]  # the third is suppressed by the first
    scores = torch.zeros(H, W)
    for i, (pv, pu) in enumerate(peaks):
        amp = 1.0 if i < 2 else 0.5
        scores = torch.maximum(scores, amp * torch.exp(-((v - pv) ** 2 + (u - pu) ** 2) / 2.0))
    kp, sc = extract_keypoints(scores[None, None], 10, threshold=0.3)
    assert len(kp) == 2
    assert sc[0] >= sc[1]
    found = {(round(float(k[1])), round(float(k[0]))) for k in kp}
    assert found == {(20, 31), (50, 10)}
    # sub-pixel: the refined position is closer to the true peak than the integer pixel
    k0 = kp[torch.argmin((kp[:, 1] - 20.3).abs() + (kp[:, 0] - 30.6).abs())]
    assert abs(float(k0[0]) - 30.6) < 0.4 and abs(float(k0[1]) - 20.3) < 0.3


def test_peakiness_prefers_peaks() -> None:
    y = torch.zeros(1, 4, 9, 9)
    y[0, 2, 4, 4] = 5.0
    p = peakiness(y)[0, 0]
    assert p[4, 4] == p.max() and p[4, 4] > 4 * p[0, 0]


def test_weights_roundtrip_and_errors(tmp_path) -> None:
    torch.manual_seed(0)
    net = DKPNet({"descriptor_dim": 32}).eval()
    path = tmp_path / "w.pt"
    save_model(net, path, note="test")
    loaded = load_model(path)
    assert loaded.conf["descriptor_dim"] == 32
    img = torch.rand(1, 1, 32, 48)
    with torch.no_grad():
        assert torch.allclose(net(img)["scores"], loaded(img)["scores"])
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        load_model(corrupt)
    wrong = tmp_path / "wrong.pt"
    torch.save({"conf": {"descriptor_dim": 64}, "state_dict": net.state_dict()}, wrong)
    with pytest.raises(WeightsError, match="does not fit"):
        load_model(wrong)
    torch.save({"just": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="not a DKPNet weight file"):
        load_model(tmp_path / "other.pt")


def test_detector_contract_on_real_image(tmp_path, shared_data) -> None:
    import cv2

    torch.manual_seed(0)
    path = tmp_path / "w.pt"
    save_model(DKPNet(), path)
    conf = FrontEndConfig()
    conf.detector.name = "dkp"
    conf.detector.max_keypoints = 300
    conf.detector.dkp.weights = str(path)
    det = create_detector(conf.detector)
    img = cv2.imread(str(shared_data("homography", "oxford", "graf", "1.png")), cv2.IMREAD_GRAYSCALE)
    img = np.ascontiguousarray(img[:301, :405])  # not a multiple of 8: padded internally
    f = det(img)
    n = len(f["keypoints"])
    assert 0 < n <= 300
    assert f["descriptors"].shape == (n, 64) and f["descriptors"].dtype == np.float32
    assert np.allclose(np.linalg.norm(f["descriptors"], axis=1), 1, atol=1e-4)
    b = conf.detector.border
    assert f["keypoints"][:, 0].min() >= b and f["keypoints"][:, 0].max() <= 404 - b
    assert f["keypoints"][:, 1].min() >= b and f["keypoints"][:, 1].max() <= 300 - b
    assert np.all(np.diff(f["scores"]) <= 0)


def test_detector_missing_weights_is_a_clear_error(tmp_path) -> None:
    conf = FrontEndConfig()
    conf.detector.name = "dkp"
    conf.detector.dkp.weights = str(tmp_path / "nope.pt")
    with pytest.raises(WeightsError, match="not found"):
        create_detector(conf.detector)


def test_no_fixed_pattern_in_score_map() -> None:
    # A textureless image must give a flat score map away from the borders. A head with
    # position-dependent parameters (pixel-shuffled cells with per-sub-pixel weights and
    # biases) draws a fixed grid here -- the degenerate solution that the peaky and similarity
    # losses accept, seen when training such a head.
    torch.manual_seed(0)
    for conf in ({}, {"multiscale": False, "dcn": False, "attention": False}):
        net = DKPNet(conf).eval()
        with torch.no_grad():
            s = net(torch.full((1, 1, 256, 256), 0.4))["scores"][0, 0]
        interior = s[96:160, 96:160]
        assert float(interior.max() - interior.min()) < 1e-5, conf


def test_shipped_detector_finds_nothing_on_flat_images(shared_data) -> None:
    """The shipped DKPNet scores every image; zero padding makes the border of a black or
    white image an edge. Keypoints need texture under them (``detector.dkp.min_texture``):
    flat images give none, a real image fills the budget, and the 2x2-cell extraction keeps
    keypoints apart."""
    det = create_detector(FrontEndConfig().detector)  # the default: dkp, shipped weights
    for value in (0, 128, 255):
        assert len(det(np.full((370, 1226), value, np.uint8))["keypoints"]) == 0
    import cv2

    image = cv2.imread(str(shared_data("sequences", "kitti07_0000-0159", "image_0",
                                       "000000.png")), cv2.IMREAD_GRAYSCALE)
    f = det(image)
    assert len(f["keypoints"]) == 1000 and f["descriptors"].shape == (1000, 64)
    one_level = create_detector(FrontEndConfig.from_dict({"detector.dkp.n_levels": 1}).detector)
    k = one_level(image)["keypoints"]
    d = np.linalg.norm(k[:, None] - k[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert len(k) == 1000 and d.min() >= 1.0  # within a level keypoints stay apart
    conf = FrontEndConfig.from_dict({"detector.dkp.min_texture": 0}).detector
    assert len(create_detector(conf)(np.full((370, 1226), 255, np.uint8))["keypoints"]) > 0


def test_pyramid_levels_are_the_network_on_shrunk_images(shared_data) -> None:
    """Level k of the pyramid is the image shrunk by scale_factor^k (area interpolation): its
    keypoints, mapped to full-resolution pixels by ``(u + 0.5) W / w - 0.5``, and their
    descriptors are exactly those of a one-level detector run on the shrunk image."""
    import cv2

    conf = FrontEndConfig.from_dict({"detector.dkp.n_levels": 2, "detector.max_keypoints": 3000,
                                     "detector.border": 0}).detector
    det = create_detector(conf)
    assert det.pyramid(370, 1226) == [(370, 1226), (262, 867)]
    assert create_detector(FrontEndConfig().detector).pyramid(120, 200) == [(120, 200), (85, 141)]
    image = cv2.imread(str(shared_data("sequences", "kitti07_0000-0159", "image_0",
                                       "000000.png")), cv2.IMREAD_GRAYSCALE)
    h, w = image.shape
    lh, lw = det.pyramid(h, w)[1]
    small = cv2.resize(image, (lw, lh), interpolation=cv2.INTER_AREA)
    single = FrontEndConfig.from_dict({"detector.dkp.n_levels": 1, "detector.max_keypoints": 3000,
                                       "detector.border": 0}).detector
    fs = create_detector(single)(small)
    f = det(image)
    mapped = (fs["keypoints"] + 0.5) * np.float32([w / lw, h / lh]) - 0.5
    d = np.linalg.norm(mapped[:, None] - f["keypoints"][None], axis=2)
    i, j = np.nonzero(d < 1e-3)
    assert len(i) > 300  # most of the small image's keypoints are level-1 keypoints here
    assert np.allclose(fs["descriptors"][i], f["descriptors"][j], atol=1e-5)
