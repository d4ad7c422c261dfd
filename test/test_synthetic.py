"""Tests of the synthetic corridor generator (dkp_slam.synthetic)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dkp_slam import synthetic as syn
from dkp_slam.camera import Camera
from dkp_slam.sequence import Sequence
from dkp_slam.synthetic import (
    Plane,
    Scene,
    SyntheticConfig,
    build_scene,
    make_synthetic_sequence,
    render_depth,
    render_frame,
    scene_for,
)


@pytest.fixture(scope="module")
def seq() -> Sequence:
    return make_synthetic_sequence(seed=0)


@pytest.fixture(scope="module")
def clean_seq() -> Sequence:
    """Noise-free variant of the default sequence (same scene and poses)."""
    return make_synthetic_sequence(seed=0, noise_std=0.0)


def _rel(T_i: np.ndarray, T_j: np.ndarray) -> np.ndarray:
    """T_cj_ci: maps camera-i coordinates into camera j."""
    return np.linalg.inv(T_j) @ T_i


def _rot_angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0))))


def _backproject(depth: np.ndarray, cam: Camera, step: int = 1):
    v, u = np.mgrid[0:cam.height:step, 0:cam.width:step]
    z = depth[v, u]
    xyz = np.stack([(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, z], -1)
    return u.ravel(), v.ravel(), xyz.reshape(-1, 3)


# ----------------------------------------------------------------------------- API / contract
def test_sequence_contract(seq: Sequence) -> None:
    assert len(seq) == 120
    assert seq.name == "synthetic_corridor_s0"
    np.testing.assert_allclose(seq.stamps, np.arange(120) / 20.0)
    cam = seq.camera
    assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy) == (640, 480, 500, 500,
                                                                        319.5, 239.5)
    assert not cam.has_distortion
    assert seq.gt_poses.shape == (120, 4, 4)
    assert seq.meta["config"]["seed"] == 0 and seq.meta["config"]["motion"] == "forward"
    json.dumps(seq.meta)  # serialisable
    assert scene_for(seq) is scene_for(SyntheticConfig())  # cached, same scene as the config
    img = seq.load_image(5)
    assert img.dtype == np.uint8 and img.shape == (480, 640)
    assert 40 < img.mean() < 220 and img.std() > 25  # textured, not blank
    sub = seq.subset(10, 20, 2)
    np.testing.assert_array_equal(sub.load_image(1), seq.load_image(12))
    with pytest.raises(IndexError):
        seq.load_image(120)
    assert make_synthetic_sequence(seed=2, motion="rotation", n_frames=3).name == \
        "synthetic_corridor_rotation_s2"
    with pytest.raises(ValueError):
        make_synthetic_sequence(motion="sideways", n_frames=2)


def test_default_trajectory(seq: Sequence) -> None:
    P = seq.gt_poses
    R = P[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    np.testing.assert_array_equal(P[:, 3], np.broadcast_to([0, 0, 0, 1.0], (120, 4)))
    step = np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1)
    assert np.all((step > 0.05) & (step < 0.1))  # 0.05-0.1 m per frame
    np.testing.assert_allclose(np.diff(P[:, 2, 3]), 0.09)  # forward along +z
    angles = [_rot_angle_deg(r) for r in R]
    assert 1.0 < max(angles) < 6.0  # a few degrees of oscillation
    # smooth: per-frame rotation small
    assert max(_rot_angle_deg(_rel(P[i], P[i + 1])[:3, :3]) for i in range(119)) < 0.5


def test_motion_modes() -> None:
    static = make_synthetic_sequence(motion="static", n_frames=6, noise_std=0.0)
    np.testing.assert_array_equal(static.gt_poses, np.broadcast_to(np.eye(4), (6, 4, 4)))
    np.testing.assert_array_equal(static.load_image(0), static.load_image(5))
    rot = make_synthetic_sequence(motion="rotation", n_frames=60)
    np.testing.assert_array_equal(rot.gt_poses[:, :3, 3], 0.0)  # fixed camera centre
    assert max(_rot_angle_deg(T[:3, :3]) for T in rot.gt_poses) > 4.0
    # pure rotation: frame 40 is frame 0 mapped by the infinite homography K R K^-1
    cam = rot.camera
    K = cam.K
    Rji = _rel(rot.gt_poses[0], rot.gt_poses[40])[:3, :3]
    Hji = K @ Rji @ np.linalg.inv(K)
    img0, img40 = rot.load_image(0).astype(np.float32), rot.load_image(40).astype(np.float32)
    warped = cv2.warpPerspective(img0, Hji, (cam.width, cam.height), flags=cv2.INTER_LINEAR,
                                 borderValue=-1)
    ok = warped >= 0
    assert ok.mean() > 0.7
    assert np.median(np.abs(warped - img40)[ok]) < 4.0


def test_determinism() -> None:
    a = make_synthetic_sequence(seed=3, n_frames=4)
    syn._build_scene_cached.cache_clear()  # rebuild the scene from scratch
    b = make_synthetic_sequence(seed=3, n_frames=4)
    c = make_synthetic_sequence(seed=4, n_frames=4)
    np.testing.assert_array_equal(a.gt_poses, b.gt_poses)
    np.testing.assert_array_equal(a.load_image(3), b.load_image(3))
    assert not np.array_equal(a.gt_poses, c.gt_poses)
    assert np.abs(a.load_image(3).astype(int) - c.load_image(3)).mean() > 10
    t1 = syn.make_texture(64, 48, np.random.default_rng(9))
    t2 = syn.make_texture(64, 48, np.random.default_rng(9))
    np.testing.assert_array_equal(t1, t2)


def test_image_options(clean_seq: Sequence) -> None:
    base = clean_seq.load_image(7).astype(np.float32)
    noisy = make_synthetic_sequence(seed=0, noise_std=4.0).load_image(7).astype(np.float32)
    d = noisy - base
    assert 3.5 < d.std() < 4.5 and abs(d.mean()) < 0.2
    exp = make_synthetic_sequence(seed=0, noise_std=0.0, exposure_change=0.3)
    coefs = []
    for i in (7, 8):
        clean, e = clean_seq.load_image(i).astype(np.float32), exp.load_image(i).astype(np.float32)
        assert np.abs(e - clean).mean() > 2.0
        # a global gain/offset: the exposed frame is an affine function of the clean one
        inner = (clean > 40) & (clean < 180)
        A = np.stack([clean[inner], np.ones(inner.sum())], 1)
        coef, *_ = np.linalg.lstsq(A, e[inner], rcond=None)
        assert np.abs(A @ coef - e[inner]).max() <= 1.0
        coefs.append(coef)
    assert not np.allclose(coefs[0], coefs[1], atol=0.01)  # changes from frame to frame
    blur = make_synthetic_sequence(seed=0, noise_std=0.0, blur_sigma=1.5).load_image(7)
    grad = lambda im: np.abs(np.diff(im.astype(np.float32), axis=1)).mean()  # noqa: E731
    assert grad(blur) < 0.7 * grad(base)


# ----------------------------------------------------------------------------- geometry
def test_pixel_centre_convention() -> None:
    """A white square's centroid lands exactly where Camera.project puts its centre."""
    tex = np.zeros((800, 800), np.uint8)
    tex[396:404, 396:404] = 255  # 8x8 texels around the centre (4 m plane, 200 px/m)
    plane = Plane("target", (-2.37, -2.21, 2.0), (1, 0, 0), (0, 1, 0), (4.0, 4.0), tex)
    scene = Scene([plane])
    T = np.eye(4)
    T[:3, 3] = (0.05, -0.02, -0.3)
    centre_world = plane.origin + 2.0 * plane.axis_u + 2.0 * plane.axis_v
    cam = Camera(320, 240, 400.0, 410.0, 159.5, 119.5)
    expected = cam.project((np.linalg.inv(T) @ np.append(centre_world, 1.0))[:3])[0]
    for ss in (1, 2, 3):
        img = render_frame(scene, T, cam, supersample=ss).astype(np.float64)
        v, u = np.mgrid[0:cam.height, 0:cam.width]
        got = np.array([(img * u).sum(), (img * v).sum()]) / img.sum()
        np.testing.assert_allclose(got, expected, atol=0.03)
    depth = render_depth(scene, T, cam)
    np.testing.assert_allclose(depth, 2.3, rtol=1e-6)  # fronto-parallel, covers the image


@pytest.mark.parametrize("roll_deg", [0.0, 25.0])
def test_plane_partly_behind_camera(roll_deg: float) -> None:
    """A floor extending behind the camera is drawn only where rays hit it in front.

    With the camera rolled, the horizon is tilted and the part of the floor behind the camera
    would be mirrored into the image above it; it must stay empty.
    """
    tex = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    floor = Plane("floor", (-10, 1.0, -10), (1, 0, 0), (0, 0, 1), (20.0, 20.0), tex)
    cam = Camera(160, 120, 100.0, 100.0, 79.5, 59.5)
    T = np.eye(4)
    a = np.radians(roll_deg)
    T[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    depth = render_depth(Scene([floor]), T, cam)
    v, u = np.mgrid[0:cam.height, 0:cam.width].astype(np.float64)
    rays = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1)
    rw = rays @ T[:3, :3].T
    with np.errstate(divide="ignore"):
        lam = 1.0 / rw[..., 1]  # ray parameter where y_world = 1; depth = lam (ray z = 1)
    hit = lam[..., None] * rw
    m = np.maximum(np.abs(hit[..., 0]), np.abs(hit[..., 2]))
    inside = (lam > 0) & (m < 9.9)
    outside = (lam <= 0) | (m > 10.1)
    assert inside.sum() > 1000 and (outside & (lam < 0) & (m < 9.9)).sum() > 1000
    np.testing.assert_allclose(depth[inside], lam[inside], rtol=1e-5)
    assert np.all(np.isinf(depth[outside]))
    img = render_frame(Scene([floor]), T, cam)
    assert np.all(img[(lam < 0) & (v < cam.cy - 10)] == syn.BACKGROUND)  # sky stays background


def test_zbuffer_occlusion() -> None:
    """The nearer surface wins whatever the drawing order."""
    far = Plane("far", (-5, -5, 5.0), (1, 0, 0), (0, 1, 0), (10.0, 10.0),
                np.full((16, 16), 200, np.uint8))
    near = Plane("near", (-0.2, -0.2, 2.0), (1, 0, 0), (0, 1, 0), (0.4, 0.4),
                 np.full((16, 16), 50, np.uint8))
    cam = Camera(160, 120, 100.0, 100.0, 79.5, 59.5)
    for planes in ([near, far], [far, near]):
        depth = render_depth(Scene(planes), np.eye(4), cam)
        img = render_frame(Scene(planes), np.eye(4), cam)
        assert depth[59, 79] == pytest.approx(2.0) and img[59, 79] == 50
        assert depth[5, 5] == pytest.approx(5.0) and img[5, 5] == 200
        assert np.isin(np.round(depth, 6), [2.0, 5.0]).all()
        # the near square spans 0.4 m * 100 px / 2 m = 20 px
        assert abs((depth < 3).sum() - 400) <= 42


def test_depth_on_planes_and_consistent_across_frames(seq: Sequence) -> None:
    scene, cam, P = scene_for(seq), seq.camera, seq.gt_poses
    i, j = 20, 26
    Di, Dj = render_depth(scene, P[i], cam), render_depth(scene, P[j], cam)
    assert np.isfinite(Di).all() and np.isfinite(Dj).all()  # closed corridor: no holes
    u, v, Xc = _backproject(Di, cam, step=3)
    Xw = Xc @ P[i][:3, :3].T + P[i][:3, 3]
    # every back-projected pixel lies on a rectangle of the scene
    assert np.all(scene.plane_index(Xw, tol=5e-3) >= 0)
    # several planes are visible, including at least one panel
    names = {scene.planes[k].name for k in np.unique(scene.plane_index(Xw, tol=5e-3))}
    assert {"left_wall", "right_wall", "floor", "ceiling"} <= names
    assert any(n.startswith("panel") for n in names)
    # reproject into frame j and compare with its rendered depth
    Xj = Xc @ _rel(P[i], P[j])[:3, :3].T + _rel(P[i], P[j])[:3, 3]
    uv = cam.project(Xj)
    ok = (Xj[:, 2] > 0) & (uv[:, 0] > 1) & (uv[:, 0] < cam.width - 2) & (uv[:, 1] > 1) \
        & (uv[:, 1] < cam.height - 2)
    Dj_at = cv2.remap(Dj.astype(np.float32), uv[ok, 0].astype(np.float32).reshape(-1, 1),
                      uv[ok, 1].astype(np.float32).reshape(-1, 1), cv2.INTER_LINEAR).ravel()
    rel = np.abs(Dj_at - Xj[ok, 2]) / Xj[ok, 2]
    assert ok.sum() > 10000
    assert np.mean(rel < 1e-2) > 0.97  # the rest: occlusion boundaries
    assert np.median(rel) < 1e-4


def test_photometric_consistency(clean_seq: Sequence) -> None:
    """Frame j warped into frame i through the rendered depth and GT pose matches frame i."""
    scene, cam, P = scene_for(clean_seq), clean_seq.camera, clean_seq.gt_poses
    i, j = 50, 53
    Ii, Ij = clean_seq.load_image(i).astype(np.float32), clean_seq.load_image(j).astype(np.float32)
    Di = render_depth(scene, P[i], cam)
    u, v, Xc = _backproject(Di, cam)

    def residual(T_ji: np.ndarray) -> float:
        Xj = Xc @ T_ji[:3, :3].T + T_ji[:3, 3]
        uv = cam.project(Xj).astype(np.float32)
        warped = cv2.remap(Ij, uv[:, 0].reshape(cam.height, cam.width),
                           uv[:, 1].reshape(cam.height, cam.width), cv2.INTER_LINEAR,
                           borderValue=-1)
        Dj = render_depth(scene, P[j], cam).astype(np.float32)
        Dj_at = cv2.remap(Dj, uv[:, 0].reshape(cam.height, cam.width),
                          uv[:, 1].reshape(cam.height, cam.width), cv2.INTER_NEAREST,
                          borderValue=0)
        visible = (warped >= 0) & (np.abs(Dj_at - Xj[:, 2].reshape(Dj.shape)) < 0.02 * Dj_at)
        assert visible.mean() > 0.6
        return float(np.median(np.abs(warped - Ii)[visible]))

    T_ji = _rel(P[i], P[j])
    good = residual(T_ji)
    T_bad = T_ji.copy()
    T_bad[0, 3] += 0.01  # 1 cm lateral error
    assert good < 1.5
    assert residual(T_bad) > 3 * good


def test_orb_two_view_geometry(seq: Sequence) -> None:
    """Consecutive frames give plenty of ORB matches and the GT relative pose.

    ORB reports integer keypoint positions, and those of its coarser octaves are quantised to
    several pixels; with ~0.09 m of baseline the translation direction is only well determined
    by the finest-octave matches, so the essential matrix is estimated from those.
    """
    cam, P = seq.camera, seq.gt_poses
    orb = cv2.ORB_create(2000)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    for i in (30, 60):
        j = i + 1
        k1, d1 = orb.detectAndCompute(seq.load_image(i), None)
        k2, d2 = orb.detectAndCompute(seq.load_image(j), None)
        matches = matcher.match(d1, d2)
        assert len(matches) >= 200
        fine = [m for m in matches if k1[m.queryIdx].octave == 0 and k2[m.trainIdx].octave == 0]
        assert len(fine) >= 200
        p1 = np.float64([k1[m.queryIdx].pt for m in fine])
        p2 = np.float64([k2[m.trainIdx].pt for m in fine])
        E, inl = cv2.findEssentialMat(p1, p2, cam.K, cv2.USAC_MAGSAC, 0.999, 1.0)
        assert inl.sum() >= 150
        _, R, t, _ = cv2.recoverPose(E[:3], p1, p2, cam.K, mask=inl.copy())
        T = _rel(P[i], P[j])
        assert _rot_angle_deg(R.T @ T[:3, :3]) < 0.5
        t_gt = T[:3, 3] / np.linalg.norm(T[:3, 3])
        t_est = t.ravel() / np.linalg.norm(t)
        assert np.degrees(np.arccos(np.clip(t_est @ t_gt, -1, 1))) < 5.0


def test_scene_layout() -> None:
    scene = build_scene(0)
    names = [p.name for p in scene.planes]
    assert {"left_wall", "right_wall", "floor", "ceiling", "end_wall"} <= set(names)
    assert sum(n.startswith("panel") for n in names) >= 2
    textures = [p.texture for p in scene.planes]
    for p in scene.planes:  # ~100-200 texels per metre, textured
        assert 100 <= p.texture.shape[1] / p.size[0] <= 210
        assert p.texture.std() > 30
    assert not np.array_equal(textures[0][:100, :100], textures[1][:100, :100])
    # longer sequences get a longer corridor: the camera never reaches the far panel
    long = make_synthetic_sequence(n_frames=160, speed=0.1)
    far = [p for p in scene_for(long).planes if p.name == "panel_far"][0]
    assert long.gt_poses[-1, 2, 3] < far.origin[2] - 1.0
    assert SyntheticConfig().camera().cx == 319.5


# ------------------------------------------------------------------ pose scenarios
def test_distorted_render_matches_the_lens_model() -> None:
    """A square off the image centre lands where the radtan Camera.project puts it."""
    tex = np.zeros((1600, 1600), np.uint8)  # black everywhere but the square
    tex[796:804, 796:804] = 255
    plane = Plane("target", (-3.2, -3.4, 2.0), (1, 0, 0), (0, 1, 0), (8.0, 8.0), tex)
    scene = Scene([plane])
    cam = Camera(320, 240, 200.0, 200.0, 159.5, 119.5, "radtan",
                 np.array([-0.28, 0.07, 0.0, 0.0, 0.0]))
    centre_world = plane.origin + 4.0 * plane.axis_u + 4.0 * plane.axis_v  # (0.8, 0.6, 2)
    expected = cam.project(centre_world)[0]
    assert np.linalg.norm(expected - [159.5, 119.5]) > 60  # far enough out to be distorted
    map_x, map_y, pinhole = syn._distortion_maps(cam)
    assert pinhole.width > cam.width and not pinhole.has_distortion
    img = cv2.remap(render_frame(scene, np.eye(4), pinhole, supersample=2), map_x, map_y,
                    cv2.INTER_LINEAR).astype(np.float64)
    v, u = np.mgrid[0:cam.height, 0:cam.width]
    got = np.array([(img * u).sum(), (img * v).sum()]) / img.sum()
    np.testing.assert_allclose(got, expected, atol=0.15)
    undistorted = Camera(320, 240, 200.0, 200.0, 159.5, 119.5).project(centre_world)[0]
    assert np.linalg.norm(got - undistorted) > 5  # the lens moved it


@pytest.mark.parametrize("name", list(syn.SCENARIOS))
def test_scenarios_are_what_they_say(name: str) -> None:
    seq = syn.make_scenario(name, n_frames=41, seed=1)
    assert seq.name == f"synthetic_{name}_s1" and seq.meta["scenario"] == name
    img = seq.load_image(40)
    assert img.shape == (480, 640) and (img == syn.BACKGROUND).mean() < 0.05
    P = seq.gt_poses
    steps_mm = 1000 * np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1)
    conf = syn.SCENARIOS[name]
    if conf.get("motion") == "rotation":
        assert steps_mm.max() == 0
    elif not name.startswith("corridor"):  # the walk sways: more than its forward speed
        np.testing.assert_allclose(np.median(steps_mm), 1000 * conf["speed"], rtol=0.15)
    if conf.get("scene") == "desk":  # the desk fills the view from 0.3-0.5 m
        depth = render_depth(syn.scene_for(seq), P[20], syn.SyntheticConfig(
            **{k: v for k, v in seq.meta["config"].items() if k != "dist"}).camera())
        assert 0.25 < np.median(depth) < 0.5 and np.isfinite(depth).all()
    if "dist" in conf:
        assert seq.camera.model == "radtan" and seq.camera.has_distortion
    with pytest.raises(ValueError, match="unknown scenario"):
        syn.make_scenario("ceiling")
