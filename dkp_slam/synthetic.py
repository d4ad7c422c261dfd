"""Deterministic synthetic corridor sequences with exact ground truth.

The scene is a textured corridor, 3 m wide and 2.5 m high (left/right wall, floor, ceiling,
end wall), with three free-standing, slightly turned panels that occlude parts of the walls.
Every surface is a planar rectangle carrying its own procedural texture (multi-scale noise under
thousands of seeded rectangles, ellipses, lines and polygons), so corner detectors find many
well-localised features at every distance.

Frames are rendered exactly: for every rectangle the texture is mapped into the image with the
plane-induced homography (``cv2.warpPerspective``), its inverse depth -- an affine function of
the pixel for a plane -- is evaluated analytically, and surfaces are composited with an
inverse-depth z-buffer. Pixels whose ray meets a plane behind the camera have negative inverse
depth and are never drawn, so rectangles that are partly behind the camera are clipped
correctly. Long surfaces are cut into tiles that each pick a mip level of the texture to limit
aliasing; rendering happens at ``supersample`` times the resolution and is reduced with
``cv2.INTER_AREA``.

Conventions: camera frame x right, y down, z forward (OpenCV); world frame equal to it for an
unrotated camera (the corridor runs along +z, the floor is at ``y = +1.2``). Poses are
``T_world_cam`` (camera-to-world, 4x4). Pixel centres follow :mod:`dkp_slam.camera` (centre of
the top-left pixel at ``(0, 0)``).

Typical use::

    seq = make_synthetic_sequence(seed=3, n_frames=60)
    img0 = seq.load_image(0)                          # HxW uint8
    depth0 = render_depth(scene_for(seq), seq.gt_poses[0], seq.camera)
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import cv2
import numpy as np

from .camera import Camera
from .sequence import Sequence

__all__ = [
    "SyntheticConfig",
    "Plane",
    "Tile",
    "Scene",
    "make_texture",
    "build_scene",
    "render_frame",
    "render_depth",
    "trajectory",
    "scene_for",
    "make_synthetic_sequence",
    "make_scenario",
    "build_desk_scene",
    "SCENARIOS",
    "DOWN_MOTIONS",
]

#: Frame rate of synthetic sequences (Hz).
FRAME_RATE = 20.0
#: Grey level where no surface is hit.
BACKGROUND = 128
#: Number of mip levels kept per texture (level ``l`` has texel size ``2**l`` times the base).
MIP_LEVELS = 4
_ALIGN = 2 ** (MIP_LEVELS - 1)  # texture sizes are multiples of this, so every level tiles
_ALPHA_MIN = 120  # coverage threshold (of 255); just below 50 % so adjacent tiles overlap
_ZNEAR = 1e-3  # metres; polygons are clipped here only to find their screen bounding box


# ---------------------------------------------------------------------------- configuration
@dataclass
class SyntheticConfig:
    """Options of :func:`make_synthetic_sequence`; every random choice derives from ``seed``.

    Attributes:
        n_frames: number of frames (20 Hz, ``stamps = i / 20``).
        width, height, fx, fy, cx, cy: pinhole intrinsics; ``cx``/``cy`` of None mean the image
            centre, ``(width - 1) / 2`` and ``(height - 1) / 2``.
        seed: seeds the scene textures, the trajectory phases and per-frame noise / exposure.
        scene: ``"corridor"`` (:func:`build_scene`) or ``"desk"`` (:func:`build_desk_scene`:
            a textured desk 0.45 m below the camera with a few raised plates).
        motion: ``"forward"`` (walk down the corridor with sway and head oscillations),
            ``"rotation"`` (pure rotation about a fixed camera centre), ``"static"``
            (identical poses; frames differ only by noise / exposure), ``"down"`` (looking
            straight down, translating along the world ``z`` axis and yawing about the
            vertical: a drone or a floor-facing robot camera), ``"creep"`` (looking down, slow
            translation along a slowly turning direction, small rotations) or ``"handheld"``
            (looking down, slow wandering translation, large rotations: 2 s periods).
        speed: translation per frame in metres (``"forward"``, ``"down"``, ``"creep"``,
            ``"handheld"``).
        sway_x, sway_y: lateral / vertical sway amplitudes in metres (``"forward"`` only).
        yaw_deg, pitch_deg, roll_deg: amplitudes of the smooth angular oscillations.
        rotation_gain: factor on the angular amplitudes in ``"rotation"`` motion.
        noise_std: std of additive Gaussian pixel noise, in grey levels (0 disables).
        blur_sigma: Gaussian blur sigma in pixels applied before noise (0 disables).
        exposure_change: amplitude of the per-frame random gain ``1 + a*u`` and offset
            ``40*a*u'`` (``u, u'`` uniform in [-1, 1]); 0 disables.
        supersample: render at this many times the resolution, then ``INTER_AREA`` down.
        texels_per_metre: texture resolution of the scene.
        dist: radial-tangential (OpenCV ``k1 k2 p1 p2 [k3]``) lens distortion of the rendered
            images (empty: a pinhole camera); the sequence's camera carries it.
        desk_structure_m: height of the tallest raised plate on the desk (``"desk"`` scene;
            the others are 1/2 and 1/4 of it): the off-plane structure.
    """

    n_frames: int = 120
    width: int = 640
    height: int = 480
    fx: float = 500.0
    fy: float = 500.0
    cx: Optional[float] = None
    cy: Optional[float] = None
    seed: int = 0
    scene: str = "corridor"
    motion: str = "forward"
    speed: float = 0.09
    sway_x: float = 0.2
    sway_y: float = 0.08
    yaw_deg: float = 3.0
    pitch_deg: float = 2.0
    roll_deg: float = 1.5
    rotation_gain: float = 3.0
    noise_std: float = 1.0
    blur_sigma: float = 0.0
    exposure_change: float = 0.0
    supersample: int = 2
    texels_per_metre: float = 200.0
    dist: tuple[float, ...] = ()
    desk_structure_m: float = 0.12

    def camera(self) -> Camera:
        """The :class:`Camera` these options describe (radtan when ``dist`` is given)."""
        cx = (self.width - 1) / 2.0 if self.cx is None else float(self.cx)
        cy = (self.height - 1) / 2.0 if self.cy is None else float(self.cy)
        dist = np.asarray(self.dist, dtype=np.float64)
        return Camera(int(self.width), int(self.height), float(self.fx), float(self.fy), cx, cy,
                      "radtan" if dist.size else "none", dist)


#: Named scenarios of the pose benchmark (docs/BENCHMARKS.md, "Poses where robots are"): each
#: a set of :class:`SyntheticConfig` overrides. Per-frame motions are those of a robot at 20 Hz.
SCENARIOS: dict[str, dict] = {
    # the default corridor walk (1.8 m/s, 3 deg oscillations)
    "corridor": {},
    # the same corridor at 1 cm per frame forward (2 cm with the sway; a robot creeping along
    # it, a car pulling away):
    # forward motion with a few pixels of parallax
    "corridor_slow": {"speed": 0.01},
    # a desk filling the view at 0.45 m, 1 cm of off-plane structure; 3 mm per frame
    "desk_plane": {"scene": "desk", "motion": "creep", "speed": 0.003, "yaw_deg": 1.0,
                   "pitch_deg": 0.7, "roll_deg": 0.5, "desk_structure_m": 0.01,
                   "texels_per_metre": 1000.0},
    # looking down from 1 m at the corridor floor, 2 cm per frame forward, yawing +-10 deg
    "drone_down": {"motion": "down", "speed": 0.02, "yaw_deg": 10.0, "pitch_deg": 1.0,
                   "roll_deg": 1.0, "texels_per_metre": 400.0},
    # turning on the spot: pure rotation, +-9 / 6 / 4.5 deg
    "pure_rotation": {"motion": "rotation"},
    # creeping 1.5 mm per frame over a desk with objects up to 12 cm high
    "creep": {"scene": "desk", "motion": "creep", "speed": 0.0015, "yaw_deg": 0.5,
              "pitch_deg": 0.3, "roll_deg": 0.3, "desk_structure_m": 0.12,
              "texels_per_metre": 1000.0},
    # handheld over a desk: 3 mm per frame, rotations up to 15 deg within 2 s
    "handheld": {"scene": "desk", "motion": "handheld", "speed": 0.003, "yaw_deg": 7.5,
                 "pitch_deg": 5.0, "roll_deg": 4.0, "desk_structure_m": 0.12,
                 "texels_per_metre": 1000.0},
    # the same through a strongly distorting lens (barrel, like the wide-angle lenses of
    # 752x480 robot cameras)
    "handheld_distorted": {"scene": "desk", "motion": "handheld", "speed": 0.003,
                           "yaw_deg": 7.5, "pitch_deg": 5.0, "roll_deg": 4.0,
                           "desk_structure_m": 0.12, "texels_per_metre": 1000.0,
                           "dist": (-0.28, 0.07, 0.0, 0.0, 0.0)},
}


# ---------------------------------------------------------------------------- scene model
@dataclass
class Tile:
    """A rectangular piece of a :class:`Plane`, the unit that is rendered.

    Attributes:
        origin: (3,) world position of the tile corner at texture coordinate (0, 0).
        size: (width, height) in metres along the plane's ``axis_u`` / ``axis_v``.
        levels: per mip level a padded 4-channel uint8 texture (grey, coverage along u,
            coverage along v, grey): one ring of texels around the tile carries the neighbouring
            grey values and coverage 0 (along its axis).
        texel: per mip level the texel size (su, sv) in metres.
    """

    origin: np.ndarray
    size: tuple[float, float]
    levels: list[np.ndarray]
    texel: list[tuple[float, float]]


@dataclass
class Plane:
    """A textured planar rectangle ``origin + s*axis_u + t*axis_v``, ``s in [0, size[0]]``,
    ``t in [0, size[1]]``.

    The texture ``texture`` (H x W uint8) covers the rectangle exactly: texel ``(row, col)`` is
    centred at ``s = (col + 0.5) * size[0] / W``, ``t = (row + 0.5) * size[1] / H``.
    """

    name: str
    origin: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    size: tuple[float, float]
    texture: np.ndarray
    tiles: list[Tile] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.origin = np.asarray(self.origin, dtype=np.float64).reshape(3)
        self.axis_u = np.asarray(self.axis_u, dtype=np.float64).reshape(3)
        self.axis_v = np.asarray(self.axis_v, dtype=np.float64).reshape(3)
        self.axis_u /= np.linalg.norm(self.axis_u)
        self.axis_v -= self.axis_u * float(self.axis_u @ self.axis_v)
        self.axis_v /= np.linalg.norm(self.axis_v)
        self.size = (float(self.size[0]), float(self.size[1]))
        self.texture = np.ascontiguousarray(self.texture, dtype=np.uint8)
        if not self.tiles:
            self.tiles = _make_tiles(self)

    @property
    def normal(self) -> np.ndarray:
        """Unit normal ``axis_u x axis_v``."""
        return np.cross(self.axis_u, self.axis_v)

    def contains(self, pts_world: np.ndarray, tol: float = 1e-6) -> np.ndarray:
        """Boolean (N,) mask: points within ``tol`` metres of the rectangle (plane and bounds)."""
        d = np.asarray(pts_world, dtype=np.float64).reshape(-1, 3) - self.origin
        s, t, n = d @ self.axis_u, d @ self.axis_v, d @ self.normal
        return ((np.abs(n) <= tol) & (s >= -tol) & (s <= self.size[0] + tol)
                & (t >= -tol) & (t <= self.size[1] + tol))


@dataclass
class Scene:
    """A list of textured planes plus the corridor extent (metres)."""

    planes: list[Plane]
    length: float = 0.0
    seed: int = 0

    def plane_index(self, pts_world: np.ndarray, tol: float = 1e-6) -> np.ndarray:
        """For each point (N,3) the index of the first plane containing it, -1 for none."""
        pts = np.asarray(pts_world, dtype=np.float64).reshape(-1, 3)
        idx = np.full(len(pts), -1, dtype=np.int64)
        for k, p in reversed(list(enumerate(self.planes))):
            idx[p.contains(pts, tol)] = k
        return idx


def _make_tiles(plane: Plane, tile_metres: float = 3.0) -> list[Tile]:
    """Cut a plane into tiles with padded mip pyramids (texture sizes multiple of 8 texels)."""
    tex = plane.texture
    h, w = tex.shape
    if h % _ALIGN or w % _ALIGN:
        raise ValueError(f"texture size {w}x{h} of plane {plane.name!r} must be a multiple "
                         f"of {_ALIGN}")
    su, sv = plane.size[0] / w, plane.size[1] / h  # level-0 texel size in metres
    pyramid = [tex]
    for _ in range(1, MIP_LEVELS):
        p = pyramid[-1]
        pyramid.append(cv2.resize(p, (p.shape[1] // 2, p.shape[0] // 2),
                                  interpolation=cv2.INTER_AREA))

    def cuts(n_texels: int, texel: float) -> list[int]:
        # equal pieces of about tile_metres, on multiples of _ALIGN texels
        k = max(1, int(round(n_texels * texel / tile_metres)))
        c = [int(round(n_texels / k * i / _ALIGN)) * _ALIGN for i in range(k + 1)]
        return sorted(set(c))

    cu, cv_ = cuts(w, su), cuts(h, sv)
    tiles = []
    for r0, r1 in zip(cv_[:-1], cv_[1:]):
        for c0, c1 in zip(cu[:-1], cu[1:]):
            levels, texels = [], []
            for lvl, img in enumerate(pyramid):
                f = 2 ** lvl
                padded = cv2.copyMakeBorder(img, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
                grey = padded[r0 // f:r1 // f + 2, c0 // f:c1 // f + 2]
                # separable coverage: bilinear interpolation of a 2D indicator would round the
                # corners off (leaving holes where tiles meet); per axis it stays exact
                cov_u = np.zeros_like(grey)
                cov_u[:, 1:-1] = 255
                cov_v = np.zeros_like(grey)
                cov_v[1:-1, :] = 255
                # 4 channels: cv2.warpPerspective is much faster for 4 than for 2 or 3 channels
                levels.append(np.ascontiguousarray(np.dstack([grey, cov_u, cov_v, grey])))
                texels.append((su * f, sv * f))
            origin = plane.origin + plane.axis_u * (c0 * su) + plane.axis_v * (r0 * sv)
            tiles.append(Tile(origin, ((c1 - c0) * su, (r1 - r0) * sv), levels, texels))
    return tiles


# ---------------------------------------------------------------------------- textures
def make_texture(width: int, height: int, rng: np.random.Generator,
                 density: float = 2.5e-3) -> np.ndarray:
    """A procedural grey texture (height x width uint8).

    Multi-scale value noise (features from 256 down to 3 texels) under ``density`` shapes per
    texel -- filled / outlined rectangles, rotated ellipses, lines and polygons of random grey
    levels, sizes log-uniform from 3 to 160 texels, drawn large first so fine detail stays on
    top. Grey levels stay within [15, 240].
    """
    w, h = int(width), int(height)
    base = float(rng.uniform(90, 165))
    acc = np.full((h, w), base, np.float32)
    for cell, amp in ((256, 22.0), (64, 14.0), (16, 9.0), (3, 5.0)):
        small = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
        acc += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(acc, 15, 240).astype(np.uint8)

    n = int(density * w * h)
    sizes = np.sort(np.exp(rng.uniform(np.log(3.0), np.log(160.0), n)))[::-1]
    kinds = rng.integers(0, 6, n)
    cxs, cys = rng.uniform(-10, w + 10, n), rng.uniform(-10, h + 10, n)
    greys = rng.integers(15, 241, n)
    aspect = np.exp(rng.uniform(-1.0, 1.0, n))
    angle = rng.uniform(0, 180, n)
    thick = rng.integers(1, 4, n)
    shift = 4  # sub-texel vertex precision for the drawing calls
    sc = 1 << shift
    for i in range(n):
        s, c = float(sizes[i]), (int(greys[i]),)
        x, y = float(cxs[i]), float(cys[i])
        a, b = s * math.sqrt(aspect[i]) / 2, s / math.sqrt(aspect[i]) / 2
        k = kinds[i]
        if k in (0, 1):  # (rotated) rectangle, filled or outlined
            box = cv2.boxPoints(((x, y), (2 * a, 2 * b), float(angle[i]) if k == 1 else 0.0))
            pts = np.round(box * sc).astype(np.int32)
            if rng.random() < 0.75:
                cv2.fillConvexPoly(img, pts, c, cv2.LINE_AA, shift)
            else:
                cv2.polylines(img, [pts], True, c, int(thick[i]), cv2.LINE_AA, shift)
        elif k == 2:  # ellipse
            cv2.ellipse(img, (int(x * sc), int(y * sc)), (max(1, int(a * sc)), max(1, int(b * sc))),
                        float(angle[i]), 0, 360, c, -1 if rng.random() < 0.7 else int(thick[i]),
                        cv2.LINE_AA, shift)
        elif k == 3:  # line segment
            dx, dy = a * math.cos(math.radians(angle[i])), a * math.sin(math.radians(angle[i]))
            cv2.line(img, (int((x - dx) * sc), int((y - dy) * sc)),
                     (int((x + dx) * sc), int((y + dy) * sc)), c, int(thick[i]), cv2.LINE_AA, shift)
        else:  # random polygon (star-shaped around the centre, may be non-convex)
            m = int(rng.integers(3, 7))
            th = np.sort(rng.uniform(0, 2 * np.pi, m))
            rr = s / 2 * rng.uniform(0.4, 1.0, m)
            pts = np.stack([x + rr * np.cos(th), y + rr * np.sin(th)], 1)
            cv2.fillPoly(img, [np.round(pts * sc).astype(np.int32)], c, cv2.LINE_AA, shift)
    return img


def _plane_from_centre(name: str, centre, yaw_deg: float, size: tuple[float, float],
                       ppm: float, rng: np.random.Generator) -> Plane:
    """A vertical panel (axis_v = +y = down) centred at ``centre`` and turned by ``yaw_deg``."""
    yaw = math.radians(yaw_deg)
    au = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
    av = np.array([0.0, 1.0, 0.0])
    origin = np.asarray(centre, float) - au * size[0] / 2 - av * size[1] / 2
    return _textured_plane(name, origin, au, av, size, ppm, rng)


def _textured_plane(name: str, origin, au, av, size: tuple[float, float], ppm: float,
                    rng: np.random.Generator) -> Plane:
    w = max(_ALIGN, int(round(size[0] * ppm / _ALIGN)) * _ALIGN)
    h = max(_ALIGN, int(round(size[1] * ppm / _ALIGN)) * _ALIGN)
    return Plane(name, origin, au, av, size, make_texture(w, h, rng))


# corridor geometry (metres): x in [-HALF_W, HALF_W], y in [CEIL_Y, FLOOR_Y], from Z_START
HALF_W, CEIL_Y, FLOOR_Y, Z_START = 1.5, -1.3, 1.2, -2.0
DEFAULT_LENGTH = 18.0


@functools.lru_cache(maxsize=3)
def _build_scene_cached(seed: int, length: float, ppm: float) -> Scene:
    ss = np.random.SeedSequence([int(seed), 0x5CE7E])
    rngs = [np.random.default_rng(s) for s in ss.spawn(8)]
    L, x0, x1, y0, y1, z0 = float(length), -HALF_W, HALF_W, CEIL_Y, FLOOR_Y, Z_START
    ex, ey, ez = np.eye(3)
    depth = L - z0
    planes = [
        _textured_plane("left_wall", (x0, y0, L), -ez, ey, (depth, y1 - y0), ppm, rngs[0]),
        _textured_plane("right_wall", (x1, y0, z0), ez, ey, (depth, y1 - y0), ppm, rngs[1]),
        _textured_plane("floor", (x0, y1, z0), ex, ez, (x1 - x0, depth), ppm, rngs[2]),
        _textured_plane("ceiling", (x0, y0, L), ex, -ez, (x1 - x0, depth), ppm, rngs[3]),
        _textured_plane("end_wall", (x0, y0, L), ex, ey, (x1 - x0, y1 - y0), ppm, rngs[4]),
        _plane_from_centre("panel_left", (-1.00, 0.35, 4.0), 20.0, (0.90, 1.70), ppm, rngs[5]),
        _plane_from_centre("panel_right", (0.95, -0.10, 7.6), -15.0, (0.90, 1.80), ppm, rngs[6]),
        _plane_from_centre("panel_far", (0.10, 0.00, L - 3.0), 10.0, (1.20, 1.40), ppm, rngs[7]),
    ]
    return Scene(planes, L, int(seed))


def build_scene(seed: int = 0, length: float = DEFAULT_LENGTH,
                texels_per_metre: float = 200.0) -> Scene:
    """The textured corridor scene for ``seed`` (cached; treat the result as read-only).

    The corridor is 3 m wide (``x in [-1.5, 1.5]``), 2.5 m high (ceiling ``y = -1.3``, floor
    ``y = 1.2``; the world origin is at eye height on the axis) and runs from ``z = -2`` to the
    end wall at ``z = length``. Three panels stand at ``z = 4`` (left, on the floor),
    ``z = 7.6`` (right, hanging) and ``z = length - 3`` (centre, in front of the end wall);
    all are turned 10-20 degrees about the vertical.
    """
    return _build_scene_cached(int(seed), float(length), float(texels_per_metre))


#: The desk of the ``"desk"`` scene: ``y = DESK_Y`` (0.45 m below a camera at the origin),
#: ``x in [-0.8, 0.8]``, ``z in [-0.6, 0.6]``.
DESK_Y, DESK_HALF_X, DESK_HALF_Z = 0.45, 0.8, 0.6


@functools.lru_cache(maxsize=3)
def _build_desk_scene_cached(seed: int, ppm: float, structure: float) -> Scene:
    ss = np.random.SeedSequence([int(seed), 0xDE5C])
    rngs = [np.random.default_rng(s) for s in ss.spawn(4)]
    ex, ez = np.eye(3)[0], np.eye(3)[2]
    planes = [_textured_plane("desk", (-DESK_HALF_X, DESK_Y, -DESK_HALF_Z), ex, ez,
                              (2 * DESK_HALF_X, 2 * DESK_HALF_Z), ppm, rngs[0])]
    # raised plates (books, boxes): (centre x, centre z, size x, size z, height share)
    for k, (x, z, sx, sz, share) in enumerate([(-0.12, 0.08, 0.22, 0.16, 1.0),
                                              (0.15, -0.10, 0.18, 0.20, 0.5),
                                              (0.05, 0.20, 0.25, 0.12, 0.25)]):
        y = DESK_Y - structure * share
        planes.append(_textured_plane(f"plate_{k}", (x - sx / 2, y, z - sz / 2), ex, ez,
                                      (sx, sz), ppm, rngs[k + 1]))
    return Scene(planes, 2 * DESK_HALF_Z, int(seed))


def build_desk_scene(seed: int = 0, texels_per_metre: float = 1000.0,
                     structure_m: float = 0.12) -> Scene:
    """A textured desk (1.6 x 1.2 m, :data:`DESK_Y` = 0.45 m below the origin) with three
    raised plates ``structure_m``, 1/2 and 1/4 of it above the desk (cached; read-only).
    A camera at the origin looking down (``"down"``, ``"creep"``, ``"handheld"`` motions)
    sees the desk filling the view, as a handheld or wrist camera over a table does."""
    return _build_desk_scene_cached(int(seed), float(texels_per_metre), float(structure_m))


# ---------------------------------------------------------------------------- rendering
def _rasterize(scene: Scene, T_world_cam: np.ndarray, camera: Camera, ss: int,
               want_image: bool) -> tuple[Optional[np.ndarray], np.ndarray]:
    """Render at ``ss`` times the resolution: (grey uint8 or None, inverse depth float32)."""
    if camera.has_distortion:
        raise ValueError("the synthetic renderer supports undistorted pinhole cameras only")
    T = np.asarray(T_world_cam, dtype=np.float64).reshape(4, 4)
    R_cw, t_wc = T[:3, :3].T, T[:3, 3]
    W, H = camera.width * ss, camera.height * ss
    # hi-res pixel (x, y) <-> native pixel u = (x + 0.5)/ss - 0.5
    S = np.array([[ss, 0, 0.5 * ss - 0.5], [0, ss, 0.5 * ss - 0.5], [0, 0, 1.0]])
    P = S @ camera.K  # camera frame -> hi-res pixels
    P_inv = np.linalg.inv(P)
    img = np.full((H, W), BACKGROUND, np.uint8) if want_image else None
    zbuf = np.zeros((H, W), np.float32)  # inverse depth; 0 = nothing (infinitely far)
    f_hi = camera.focal * ss
    for plane in scene.planes:
        n_c = R_cw @ plane.normal
        for tile in plane.tiles:
            o_c = R_cw @ (tile.origin - t_wc)
            d = float(n_c @ o_c)
            if abs(d) < 1e-9:  # camera centre in the plane: seen edge-on
                continue
            au, av = R_cw @ plane.axis_u, R_cw @ plane.axis_v
            corners = np.stack([o_c, o_c + au * tile.size[0],
                                o_c + au * tile.size[0] + av * tile.size[1],
                                o_c + av * tile.size[1]])
            poly = _clip_near(corners, _ZNEAR)
            if len(poly) < 3:
                continue
            pix = (poly @ P.T)
            pix = pix[:, :2] / pix[:, 2:3]
            xa, ya = np.floor(pix.min(0)).astype(np.int64) - 1
            xb, yb = np.ceil(pix.max(0)).astype(np.int64) + 2
            xa, ya, xb, yb = max(xa, 0), max(ya, 0), min(xb, W), min(yb, H)
            if xa >= xb or ya >= yb:
                continue
            # mip level from the smallest depth: texels per hi-res pixel there
            zmin = max(float(poly[:, 2].min()), _ZNEAR)
            ratio = zmin / f_hi / min(tile.texel[0])
            lvl = int(np.clip(np.floor(np.log2(max(ratio, 1e-12))), 0, MIP_LEVELS - 1))
            su, sv = tile.texel[lvl]
            # padded texel (i, j) centre: origin + au*(j - 0.5)*su + av*(i - 0.5)*sv
            A = np.stack([au * su, av * sv, o_c - 0.5 * (au * su + av * sv)], 1)
            H_img = np.array([[1, 0, -xa], [0, 1, -ya], [0, 0, 1.0]]) @ P @ A
            warped = cv2.warpPerspective(
                tile.levels[lvl], np.linalg.inv(H_img), (int(xb - xa), int(yb - ya)),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
            # inverse depth of the plane along the ray of hi-res pixel (x, y): affine in x, y
            c = (P_inv.T @ n_c) / d
            xs = (np.arange(xa, xb, dtype=np.float64) * c[0]).astype(np.float32)
            ys = (np.arange(ya, yb, dtype=np.float64) * c[1] + c[2]).astype(np.float32)
            invz = ys[:, None] + xs[None, :]
            zroi = zbuf[ya:yb, xa:xb]
            m = (warped[:, :, 1] >= _ALPHA_MIN) & (warped[:, :, 2] >= _ALPHA_MIN)
            m &= invz > zroi
            np.copyto(zroi, invz, where=m)
            if img is not None:
                np.copyto(img[ya:yb, xa:xb], warped[:, :, 0], where=m)
    return img, zbuf


def _clip_near(poly: np.ndarray, znear: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a 3D polygon (N,3) to ``z >= znear``."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ina, inb = a[2] >= znear, b[2] >= znear
        if ina:
            out.append(a)
        if ina != inb:
            t = (znear - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out).reshape(-1, 3)


def render_frame(scene: Scene, T_world_cam: np.ndarray, camera: Camera, *,
                 supersample: int = 2) -> np.ndarray:
    """Render the noise-free grey image (``camera.height x camera.width`` uint8).

    Args:
        scene: from :func:`build_scene` (or hand-built :class:`Plane` lists).
        T_world_cam: 4x4 camera-to-world pose (camera x right, y down, z forward).
        camera: undistorted pinhole camera.
        supersample: render at this factor and reduce with ``cv2.INTER_AREA`` (1 = off).
    """
    ss = max(1, int(supersample))
    img, _ = _rasterize(scene, T_world_cam, camera, ss, True)
    if ss > 1:
        img = cv2.resize(img, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    return img


def render_depth(scene: Scene, T_world_cam: np.ndarray, camera: Camera) -> np.ndarray:
    """Per-pixel depth (camera-frame z, metres, float64 HxW); ``inf`` where nothing is hit.

    Evaluated exactly at the pixel centres, with the same visibility as :func:`render_frame`.
    """
    _, invz = _rasterize(scene, T_world_cam, camera, 1, False)
    depth = np.full(invz.shape, np.inf)
    hit = invz > 0
    depth[hit] = 1.0 / invz[hit].astype(np.float64)
    return depth


# ---------------------------------------------------------------------------- trajectory
def _rot(axis: int, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def trajectory(config: SyntheticConfig) -> np.ndarray:
    """Ground-truth poses ``T_world_cam`` (n_frames, 4, 4) for ``config``.

    ``"forward"``: ``z = speed * i`` (1.8 m/s at the defaults) with sinusoidal lateral / vertical
    sway and yaw / pitch / roll oscillations (periods 2.5-6 s, phases from the seed);
    ``"rotation"``: the same angular oscillations times ``rotation_gain`` about the origin;
    ``"static"``: identity for every frame. Rotation is ``R = Ry(yaw) Rx(pitch) Rz(roll)``.
    The looking-down motions start from ``R_down`` (camera ``z`` = world ``+y``, image up =
    world ``+z``) and rotate by ``R_down Rz(yaw) Rx(pitch) Ry(roll)`` (yaw about the optical
    axis, i.e. the vertical): ``"down"`` 1 m above the corridor floor moving along ``+z`` by
    ``speed`` per frame with a small sway; ``"creep"`` by ``speed`` per frame along a direction
    that turns once in 20 s; ``"handheld"`` by ``speed`` per frame along a wandering direction,
    with angular periods near 2 s (``yaw_deg`` 7.5 gives up to 15 deg within 2 s).
    """
    n = int(config.n_frames)
    rng = np.random.default_rng(np.random.SeedSequence([int(config.seed), 0x7AA1]))
    ph = rng.uniform(0, 2 * np.pi, 5)
    t = np.arange(n) / FRAME_RATE
    poses = np.tile(np.eye(4), (n, 1, 1))
    if config.motion == "static":
        return poses
    if config.motion in DOWN_MOTIONS:
        return _down_trajectory(config, t, ph)
    if config.motion not in ("forward", "rotation"):
        raise ValueError(f"unknown motion {config.motion!r}; use one of forward, rotation, "
                         f"static, {', '.join(DOWN_MOTIONS)}")
    g = config.rotation_gain if config.motion == "rotation" else 1.0
    yaw = g * math.radians(config.yaw_deg) * np.sin(2 * np.pi * 0.23 * t + ph[0])
    pitch = g * math.radians(config.pitch_deg) * np.sin(2 * np.pi * 0.31 * t + ph[1])
    roll = g * math.radians(config.roll_deg) * np.sin(2 * np.pi * 0.17 * t + ph[2])
    for i in range(n):
        poses[i, :3, :3] = _rot(1, yaw[i]) @ _rot(0, pitch[i]) @ _rot(2, roll[i])
    if config.motion == "forward":
        poses[:, 0, 3] = config.sway_x * np.sin(2 * np.pi * 0.29 * t + ph[3])
        poses[:, 1, 3] = config.sway_y * np.sin(2 * np.pi * 0.41 * t + ph[4])
        poses[:, 2, 3] = config.speed * np.arange(n)
    return poses


#: Motions that look down (at the corridor floor or the desk).
DOWN_MOTIONS = ("down", "creep", "handheld")


def _down_trajectory(config: SyntheticConfig, t: np.ndarray, ph: np.ndarray) -> np.ndarray:
    """Poses of the looking-down motions (see :func:`trajectory`)."""
    n = len(t)
    handheld = config.motion == "handheld"
    f_yaw, f_pitch, f_roll = (0.5, 0.35, 0.6) if handheld else (0.23, 0.31, 0.17)
    yaw = math.radians(config.yaw_deg) * np.sin(2 * np.pi * f_yaw * t + ph[0])
    pitch = math.radians(config.pitch_deg) * np.sin(2 * np.pi * f_pitch * t + ph[1])
    roll = math.radians(config.roll_deg) * np.sin(2 * np.pi * f_roll * t + ph[2])
    R_down = _rot(0, -math.pi / 2)
    poses = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        poses[i, :3, :3] = R_down @ _rot(2, yaw[i]) @ _rot(0, pitch[i]) @ _rot(1, roll[i])
    step = float(config.speed)
    if config.motion == "down":  # 1 m above the floor, along the corridor
        poses[:, 0, 3] = 0.05 * np.sin(2 * np.pi * 0.29 * t + ph[3])
        poses[:, 1, 3] = FLOOR_Y - 1.0
        poses[:, 2, 3] = step * np.arange(n)
        return poses
    heading = (ph[3] + 1.2 * np.sin(2 * np.pi * 0.15 * t + ph[4]) if handheld
               else ph[3] + 2 * np.pi * 0.05 * t)
    velocity = step * np.stack([np.cos(heading), 0.3 * np.sin(2 * np.pi * 0.2 * t + ph[4]),
                                np.sin(heading)], 1)
    positions = np.cumsum(velocity, 0) - velocity[0]
    positions -= 0.5 * (positions.max(0) + positions.min(0)) * [1, 0, 1]  # over the desk centre
    poses[:, :3, 3] = positions
    return poses


def _distortion_maps(camera: Camera) -> tuple[np.ndarray, np.ndarray, Camera]:
    """``(map_x, map_y, pinhole)``: for every pixel of the distorted ``camera``, where to sample
    a pinhole render with the same focal lengths on a canvas large enough for it."""
    h, w = camera.height, camera.width
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)),
                    -1).reshape(-1, 1, 2)
    x = cv2.undistortPoints(grid, camera.K, camera.dist).reshape(h, w, 2)
    u, v = camera.fx * x[..., 0] + camera.cx, camera.fy * x[..., 1] + camera.cy
    mx = int(math.ceil(max(0.0, -u.min(), u.max() - (w - 1)))) + 2
    my = int(math.ceil(max(0.0, -v.min(), v.max() - (h - 1)))) + 2
    pinhole = Camera(w + 2 * mx, h + 2 * my, camera.fx, camera.fy, camera.cx + mx,
                     camera.cy + my)
    return (u + mx).astype(np.float32), (v + my).astype(np.float32), pinhole


# ---------------------------------------------------------------------------- sequence
def _post_process(img: np.ndarray, config: SyntheticConfig, i: int) -> np.ndarray:
    """Blur, per-frame exposure and noise, deterministic in (seed, frame)."""
    if config.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), float(config.blur_sigma))
    if config.noise_std <= 0 and config.exposure_change <= 0:
        return img
    rng = np.random.default_rng(np.random.SeedSequence([int(config.seed), 0xF4A3E, int(i)]))
    out = img.astype(np.float32)
    if config.exposure_change > 0:
        gain, off = rng.uniform(-1, 1, 2)
        out = out * (1.0 + config.exposure_change * gain) + 40.0 * config.exposure_change * off
    if config.noise_std > 0:
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(config.noise_std)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def scene_for(source: SyntheticConfig | Sequence) -> Scene:
    """The (cached) scene a synthetic sequence -- or the sequence of a config -- is rendered
    from; the corridor extends at least 7 m beyond the farthest camera position."""
    if isinstance(source, Sequence):
        source = SyntheticConfig(**source.meta["config"])
    if source.scene == "desk":
        return build_desk_scene(source.seed, source.texels_per_metre, source.desk_structure_m)
    if source.scene != "corridor":
        raise ValueError(f"unknown scene {source.scene!r}; use corridor or desk")
    poses = trajectory(source)
    length = max(DEFAULT_LENGTH, float(poses[:, 2, 3].max()) + 7.0)
    return build_scene(source.seed, length, source.texels_per_metre)


def make_synthetic_sequence(config: Optional[SyntheticConfig] = None,
                            **overrides) -> Sequence:
    """A lazily rendered synthetic corridor :class:`~dkp_slam.sequence.Sequence`.

    Args:
        config: options (defaults when None).
        **overrides: fields of :class:`SyntheticConfig` replacing those of ``config``.

    Returns:
        Sequence named ``synthetic_<scene>_s{seed}`` (``synthetic_<scene>_{motion}_s{seed}``
        for non-forward motion) with ``stamps = i / 20``, grey uint8 frames rendered on demand
        by ``load_image(i)``, the pinhole camera, exact ``gt_poses`` (T_world_cam) and a
        JSON-friendly ``meta`` (``source``, ``config`` as a dict, ``corridor_length``). The
        scene itself is cached and available through :func:`scene_for`.
    """
    cfg = replace(config or SyntheticConfig(), **overrides)
    if cfg.n_frames < 1:
        raise ValueError("n_frames must be >= 1")
    camera = cfg.camera()
    poses = trajectory(cfg)
    scene = scene_for(cfg)
    n = cfg.n_frames
    maps = _distortion_maps(camera) if camera.has_distortion else None

    def load_image(i: int) -> np.ndarray:
        i = int(i)
        if not 0 <= i < n:
            raise IndexError(f"frame {i} out of range [0, {n})")
        if maps is None:
            img = render_frame(scene, poses[i], camera, supersample=cfg.supersample)
        else:  # a pinhole render on a larger canvas, resampled through the lens model
            img = render_frame(scene, poses[i], maps[2], supersample=cfg.supersample)
            img = cv2.remap(img, maps[0], maps[1], cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND)
        return _post_process(img, cfg, i)

    name = f"synthetic_{cfg.scene}" + ("" if cfg.motion == "forward" else f"_{cfg.motion}")
    return Sequence(
        name=f"{name}_s{cfg.seed}",
        stamps=np.arange(n) / FRAME_RATE,
        load_image=load_image,
        camera=camera,
        gt_poses=poses,
        meta={"source": "synthetic", "config": asdict(cfg), "corridor_length": scene.length},
    )


def make_scenario(name: str, **overrides) -> Sequence:
    """The synthetic sequence of scenario ``name`` (:data:`SCENARIOS`), named
    ``synthetic_<name>_s<seed>``; ``overrides`` replace fields (``n_frames``, ``seed``...).

    Raises:
        ValueError: an unknown scenario."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; available: {', '.join(SCENARIOS)}")
    seq = make_synthetic_sequence(SyntheticConfig(**{**SCENARIOS[name], **overrides}))
    seq.name = f"synthetic_{name}_s{seq.meta['config']['seed']}"
    seq.meta["scenario"] = name
    return seq
