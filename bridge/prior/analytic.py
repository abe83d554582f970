"""ProcHead: an analytic, parametric radiance field of a stylised human head.

Conventions are EG3D's: the field lives in the box [-0.5, 0.5]^3, y is up and the face looks
toward +z (the frontal camera sits at (0, 0, 2.7) and looks at (0, 0, 0.2)). The head is framed
like an FFHQ portrait: skull centred near (0, 0.03, 0), chin near y = -0.21, face front near
z = 0.21, hair top near y = 0.28, and a neck down to y = -0.47.

The head is a union of components, each an approximate signed distance function (SDF):

- skin: skull ellipsoid and a lower-face ellipsoid (both narrowed toward the chin by `jaw_width`)
  and a neck cylinder, smoothly unioned with the ears (flat ellipsoids flaring back) and the nose
  (a tapered capsule from the bridge to the tip plus an ellipsoid for the nostril wings);
- eyes: eyeball spheres set into the face, coloured by the angle from their forward (+z) axis,
  seen from a point behind the eyeball (sclera, iris in the eye colour, pupil);
- eyebrows: arched ellipsoids above the eyes, a darker shade of the hair colour;
- mouth: upper and lower lip ellipsoids; `mouth_open` carves an ellipsoid cavity between them and
  drops the lower lip, and a thin lining around the cavity shows its dark-red inside;
- hair: a thicker ellipsoid around the skull kept above the front hairline and extended down the
  back and sides (an elliptic cylinder below the skull) according to `hair_length`.

Labels follow `PART_NAMES`. Inside several components the one with the highest priority wins
(eyes > lips > mouth lining > eyebrows > hair > nose > ears > skin); outside all of them the
nearest one does, and farther than `LABEL_DISTANCE` from the surface the label is background.
Soft shading from a fixed light is baked into the colour, since the field itself has no lighting.

The small components (face features, ears) are evaluated only near their bounding boxes; farther
away their distance is replaced by the (smaller) distance to the box. That is at least
`LOCAL_MARGIN` (> LABEL_DISTANCE + LINING), so neither the surface, the density, nor the labels
and colours within LABEL_DISTANCE of the surface change.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.prior.params import PARAM_INDEX

PART_NAMES = ("background", "skin", "eyes", "hair", "eyebrows", "nose", "mouth", "ears")
PART_IDS = {name: i for i, name in enumerate(PART_NAMES)}

SIGMA_SCALE = 50.0
SURFACE_WIDTH = 0.012
LABEL_DISTANCE = 2.0 * SURFACE_WIDTH
BOX_HALF = 0.5
LOCAL_MARGIN = 0.065
TIE_BREAK = 1e-5

# (component name, part name, priority inside overlapping components)
COMPONENTS: tuple[tuple[str, str, int], ...] = (
    ("skull", "skin", 0),
    ("lower_face", "skin", 0),
    ("neck", "skin", 0),
    ("ear_left", "ears", 1),
    ("ear_right", "ears", 1),
    ("nose_bridge", "nose", 2),
    ("nose_wings", "nose", 2),
    ("hair", "hair", 3),
    ("brow_left", "eyebrows", 4),
    ("brow_right", "eyebrows", 4),
    ("lip_upper", "mouth", 6),
    ("lip_lower", "mouth", 6),
    ("mouth_lining", "mouth", 5),
    ("eye_left", "eyes", 7),
    ("eye_right", "eyes", 7),
)
COMPONENT_NAMES = tuple(name for name, _, _ in COMPONENTS)
COMPONENT_PARTS = tuple(PART_IDS[part] for _, part, _ in COMPONENTS)
COMPONENT_IDS = {name: i for i, name in enumerate(COMPONENT_NAMES)}
_PRIORITY = tuple(priority for _, _, priority in COMPONENTS)

# Layout in box units; offsets are relative to the skull centre and scale with the head size.
HEAD_CENTRE = (0.0, 0.03, 0.0)
SKULL_RADII = (0.19, 0.24, 0.21)
LOWER_FACE_OFFSET = (0.0, -0.08, 0.05)
LOWER_FACE_RADII = (0.155, 0.16, 0.162)
JAW_TAPER_TOP = -0.04
EYE_OFFSET_Y = 0.025
EYE_RADIUS = 0.028
EYE_INSET = 0.42
IRIS_RADIUS = 0.62
PUPIL_RADIUS = 0.25
IRIS_APEX = 3.0
BROW_GAP = 0.017
BROW_RAISE = 0.022
BROW_HALF_LENGTH = 0.036
BROW_HALF_HEIGHT = (0.007, 0.014)
BROW_DEPTH = 0.012
BROW_ARCH = 8.0
NOSE_LENGTH = 0.10
NOSE_PROTRUSION = 0.022
MOUTH_OFFSET_Y = -0.155
MOUTH_HALF_WIDTH = (0.040, 0.062)
LIP_DEPTH = 0.018
FACE_CURVE = 5.0
CAVITY_HEIGHT = 0.028
LOWER_LIP_DROP = 0.022
CLOSED_CAVITY_OFFSET = 0.04
LINING = 0.03
EAR_OFFSET_Y = -0.03
EAR_Z = -0.02
EAR_OUTSET = 0.012
EAR_FLARE = 0.40
NECK_RADIUS = 0.082
NECK_Z = -0.03
NECK_BOTTOM = -0.47
HAIR_MIN_THICKNESS = 0.015
HAIR_VOLUME_THICKNESS = 0.035
HAIR_FLARE = 0.12
HAIRLINE_RANGE = (0.125, 0.185)
HAIR_SIDE_BOTTOM = (0.08, -0.34)
HAIR_BACK_BOTTOM = (-0.07, -0.38)

# Smooth-union radii.
BLEND_FACE = 0.05
BLEND_NECK = 0.04
BLEND_EAR = 0.01
BLEND_NOSE = 0.012

# Colours and shading.
SKIN_RAMP = (
    (0.97, 0.82, 0.71),
    (0.87, 0.66, 0.50),
    (0.66, 0.45, 0.30),
    (0.38, 0.24, 0.15),
)
SCLERA = (0.96, 0.95, 0.93)
PUPIL = (0.04, 0.04, 0.05)
LIP_RED = (0.80, 0.16, 0.22)
LIP_PALE = (0.88, 0.68, 0.66)
MOUTH_INSIDE = (0.30, 0.04, 0.06)
BROW_SHADE = 0.5
LIGHT = (-0.45, 0.55, 0.70)
AMBIENT = 0.70
DIFFUSE = 0.30
SHADING_CENTRE = (0.0, 0.02, -0.02)
SHADING_RADII = (0.21, 0.27, 0.24)
EYE_SHADOW = 0.35
EYE_SHADOW_WIDTH = 0.01
NOSE_SHADING_WIDTH = 0.025
NOSTRIL_PLACE = (0.5, 0.45, 0.75)
NOSTRIL_RADIUS = 0.7
NOSTRIL_DARKNESS = 0.55
COMPONENT_TINT = {
    "ear_left": (0.96, 0.88, 0.86),
    "ear_right": (0.96, 0.88, 0.86),
    "nose_bridge": (0.99, 0.90, 0.87),
    "nose_wings": (0.97, 0.86, 0.82),
    "neck": (0.86, 0.84, 0.84),
}

Layout = dict[str, "Tensor | tuple"]


# ---------------------------------------------------------------- distance helpers


def smooth_min(a: Tensor, b: Tensor, k: float) -> Tensor:
    """Polynomial smooth minimum with blend radius k."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def smoothstep(edge0: float, edge1: float, x: Tensor) -> Tensor:
    t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def sd_ellipsoid(x: Tensor, y: Tensor, z: Tensor, centre, radii) -> Tensor:
    """Approximate (gradient-corrected) SDF of an axis-aligned ellipsoid; centre/radii broadcast."""
    ux, uy, uz = (x - centre[0]) / radii[0], (y - centre[1]) / radii[1], (z - centre[2]) / radii[2]
    k0 = torch.sqrt(ux * ux + uy * uy + uz * uz)
    vx, vy, vz = ux / radii[0], uy / radii[1], uz / radii[2]
    k1 = torch.sqrt(vx * vx + vy * vy + vz * vz)
    return k0 * (k0 - 1.0) / k1.clamp_min(1e-8)


def sd_ellipse_xz(x: Tensor, z: Tensor, centre, radii) -> Tensor:
    """Approximate SDF of an infinite vertical elliptic cylinder."""
    ux, uz = (x - centre[0]) / radii[0], (z - centre[1]) / radii[1]
    k0 = torch.sqrt(ux * ux + uz * uz)
    vx, vz = ux / radii[0], uz / radii[1]
    k1 = torch.sqrt(vx * vx + vz * vz)
    return k0 * (k0 - 1.0) / k1.clamp_min(1e-8)


def sd_sphere(x: Tensor, y: Tensor, z: Tensor, centre, radius) -> Tensor:
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    return torch.sqrt(dx * dx + dy * dy + dz * dz) - radius


def sd_tapered_capsule(x: Tensor, y: Tensor, z: Tensor, a, b, radius_a, radius_b) -> Tensor:
    """Capsule from a to b whose radius goes linearly from radius_a to radius_b (approximate)."""
    bax, bay, baz = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    pax, pay, paz = x - a[0], y - a[1], z - a[2]
    h = ((pax * bax + pay * bay + paz * baz) / (bax * bax + bay * bay + baz * baz)).clamp(0.0, 1.0)
    ox, oy, oz = pax - bax * h, pay - bay * h, paz - baz * h
    return torch.sqrt(ox * ox + oy * oy + oz * oz) - (radius_a + (radius_b - radius_a) * h)


def sd_vertical_cylinder(x: Tensor, y: Tensor, z: Tensor, centre_xz, radius, y0, y1) -> Tensor:
    """Capped cylinder along y from y0 to y1."""
    dx, dz = x - centre_xz[0], z - centre_xz[1]
    radial = torch.sqrt(dx * dx + dz * dz) - radius
    axial = torch.maximum(y0 - y, y - y1)
    outside = torch.sqrt(radial.clamp_min(0.0) ** 2 + axial.clamp_min(0.0) ** 2)
    return outside + torch.maximum(radial, axial).clamp_max(0.0)


def sd_box(points: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """SDF of the axis-aligned box [low, high] (each broadcasting to points) at points (..., 3)."""
    q = (points - 0.5 * (low + high)).abs() - 0.5 * (high - low)
    return q.clamp_min(0.0).norm(dim=-1) + q.amax(dim=-1).clamp_max(0.0)


# ---------------------------------------------------------------- layout


def _param(params: Tensor, name: str) -> Tensor:
    """Column of one parameter as (B, 1), ready to broadcast against (B, N) coordinates."""
    return params[:, PARAM_INDEX[name]].unsqueeze(-1)


def _jaw_scale(y: Tensor, lay: Layout) -> Tensor:
    """Factor (<= 1) by which the face is narrowed in x below the cheeks."""
    t = ((lay["taper_top"] - y) / (lay["taper_top"] - lay["chin_y"])).clamp(0.0, 1.0)
    return 1.0 - (1.0 - lay["jaw"]) * t * t


def _front_z(x: Tensor, y: Tensor, lay: Layout) -> Tensor:
    """z of the face surface (skull or lower face, whichever is in front) above (x, y)."""
    xs = x / _jaw_scale(y, lay)
    fronts = []
    for c, r in ((lay["skull_c"], lay["skull_r"]), (lay["face_c"], lay["face_r"])):
        inside = 1.0 - (xs / r[0]) ** 2 - ((y - c[1]) / r[1]) ** 2
        fronts.append(c[2] + r[2] * inside.clamp_min(1e-12).sqrt())
    return torch.maximum(fronts[0], fronts[1])


def _lerp(range_: tuple[float, float], t: Tensor) -> Tensor:
    return range_[0] + (range_[1] - range_[0]) * t


def layout(params: Tensor) -> Layout:
    """Anchor points and sizes of every component for heads (B, P).

    Values are (B, 1) tensors or tuples of them (x, y, z centres, radii); tests and tools use the
    anchors, e.g. `layout(p)["nose_tip"]`, `["eye_right_c"]`, `["mouth_c"]`.
    """
    p = lambda name: _param(params, name)  # noqa: E731
    w, h, d = p("head_width"), p("head_height"), p("head_depth")
    cx, cy, cz = (torch.full_like(w, v) for v in HEAD_CENTRE)
    const = lambda v: torch.full_like(w, v)  # noqa: E731
    lay: Layout = {"jaw": p("jaw_width"), "depth": d}
    lay["skull_c"] = (cx, cy, cz)
    lay["skull_r"] = (SKULL_RADII[0] * w, SKULL_RADII[1] * h, SKULL_RADII[2] * d)
    lay["face_c"] = (cx + LOWER_FACE_OFFSET[0] * w, cy + LOWER_FACE_OFFSET[1] * h, cz + LOWER_FACE_OFFSET[2] * d)
    lay["face_r"] = (LOWER_FACE_RADII[0] * w, LOWER_FACE_RADII[1] * h, LOWER_FACE_RADII[2] * d)
    lay["chin_y"] = cy - SKULL_RADII[1] * h
    lay["taper_top"] = cy + JAW_TAPER_TOP * h

    eye_y = cy + EYE_OFFSET_Y * h
    eye_r = EYE_RADIUS * p("eye_size")
    spacing = p("eye_spacing")
    eye_z = _front_z(spacing, eye_y, lay) - EYE_INSET * eye_r
    lay["eye_left_c"] = (-spacing, eye_y, eye_z)
    lay["eye_right_c"] = (spacing, eye_y, eye_z)
    lay["eye_radius"] = eye_r

    brow_y = eye_y + eye_r + BROW_GAP + BROW_RAISE * p("brow_height")
    brow_x = spacing + 0.004
    brow_z = _front_z(brow_x, brow_y, lay) - 0.002
    lay["brow_left_c"] = (-brow_x, brow_y, brow_z)
    lay["brow_right_c"] = (brow_x, brow_y, brow_z)
    brow_half_height = _lerp(BROW_HALF_HEIGHT, p("eyebrow_thickness"))
    lay["brow_r"] = (const(BROW_HALF_LENGTH), brow_half_height, const(BROW_DEPTH))

    size = p("nose_size")
    bridge_y = eye_y - 0.006
    tip_y = eye_y - NOSE_LENGTH * h * (0.75 + 0.25 * size)
    tip_z = _front_z(cx, tip_y, lay) + NOSE_PROTRUSION * size
    lay["nose_bridge_a"] = (cx, bridge_y, _front_z(cx, bridge_y, lay) - 0.006)
    lay["nose_tip"] = (cx, tip_y, tip_z)
    lay["nose_radii"] = (0.012 * size.sqrt(), 0.018 * size.sqrt())
    lay["nose_wings_c"] = (cx, tip_y - 0.007, tip_z - 0.016 * size)
    lay["nose_wings_r"] = (0.028 * size, 0.013 * size.sqrt(), 0.015 * size.sqrt())

    opening = p("mouth_open")
    mouth_y = cy + MOUTH_OFFSET_Y * h
    mouth_z = _front_z(cx, mouth_y, lay)
    half_width = _lerp(MOUTH_HALF_WIDTH, p("mouth_width"))
    lay["mouth_c"] = (cx, mouth_y, mouth_z)
    lay["lip_upper_c"] = (cx, mouth_y + 0.010 + 0.004 * opening, mouth_z - 0.001)
    lay["lip_upper_r"] = (half_width, const(0.012), const(LIP_DEPTH))
    lay["lip_lower_c"] = (cx, mouth_y - 0.012 - LOWER_LIP_DROP * opening, mouth_z - 0.002)
    lay["lip_lower_r"] = (0.9 * half_width, const(0.014), const(LIP_DEPTH))
    lay["cavity_c"] = (cx, mouth_y - 0.003 - 0.5 * LOWER_LIP_DROP * opening, mouth_z - 0.012)
    lay["cavity_r"] = (0.82 * half_width, 0.002 + CAVITY_HEIGHT * opening, const(0.032))
    lay["cavity_closed"] = CLOSED_CAVITY_OFFSET * (1.0 - smoothstep(0.0, 0.25, opening))

    ear_y = cy + EAR_OFFSET_Y * h
    ear_z = EAR_Z * d
    ear_size = p("ear_size")
    sr = lay["skull_r"]
    edge = (1.0 - ((ear_y - cy) / sr[1]) ** 2 - (ear_z / sr[2]) ** 2).clamp_min(1e-12).sqrt()
    ear_x = sr[0] * _jaw_scale(ear_y, lay) * edge + EAR_OUTSET
    lay["ear_left_c"] = (-ear_x, ear_y, ear_z)
    lay["ear_right_c"] = (ear_x, ear_y, ear_z)
    lay["ear_r"] = (const(0.015), 0.05 * ear_size, 0.032 * ear_size)

    lay["neck_c"] = (cx, cz + NECK_Z * d)
    lay["neck_radius"] = NECK_RADIUS * w
    lay["neck_top"] = cy - 0.1 * h

    length = p("hair_length")
    thickness = HAIR_MIN_THICKNESS + HAIR_VOLUME_THICKNESS * p("hair_volume")
    lay["hair_r"] = (sr[0] + thickness, sr[1] + thickness, sr[2] + thickness)
    lay["hair_flare"] = HAIR_FLARE * (0.3 + 0.7 * p("hair_volume"))
    lay["hairline_y"] = cy + _lerp(HAIRLINE_RANGE, p("hairline")) * h
    lay["hair_side_y"] = _lerp(HAIR_SIDE_BOTTOM, length * length)
    lay["hair_back_y"] = _lerp(HAIR_BACK_BOTTOM, length)
    return lay


def _head(lay: Layout, b: int) -> Layout:
    """The layout of head b alone; its (1, 1) values broadcast against (1, M) coordinates."""

    def one(value):
        return tuple(v[b : b + 1] for v in value) if isinstance(value, tuple) else value[b : b + 1]

    return {name: one(value) for name, value in lay.items()}


def _per_head(mask: Tensor, points: Tensor, lay: Layout, fn, base: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
    """Evaluate fn(x, y, z, layout_b, b) -> {name: values} on the points under `mask` (B, N).

    Heads are taken one by one, so that their (1, 1) layout values broadcast against (1, M) point
    coordinates. Returns, per name, its base (B, N, C) (one tensor for all names, or one per name)
    with the masked entries replaced.
    """
    rows: dict[str, list[Tensor]] = {}
    for b in range(points.shape[0]):
        index = torch.nonzero(mask[b]).squeeze(1)
        x, y, z = points[b, index].T.unsqueeze(1)
        for name, value in fn(x, y, z, _head(lay, b), b).items():
            row = base[name][b] if isinstance(base, dict) else base[b]
            value = value.reshape(index.shape[0], row.shape[-1]).to(row.dtype)
            rows.setdefault(name, []).append(row.index_copy(0, index, value))
    return {name: torch.stack(r) for name, r in rows.items()}


# ---------------------------------------------------------------- components


def _skin_core(x, y, z, lay: Layout) -> tuple[Tensor, Tensor]:
    """Skull and lower-face ellipsoids, both narrowed toward the chin."""
    scale = _jaw_scale(y, lay)
    xs = x / scale
    skull = sd_ellipsoid(xs, y, z, lay["skull_c"], lay["skull_r"]) * scale
    face = sd_ellipsoid(xs, y, z, lay["face_c"], lay["face_r"]) * scale
    return skull, face


def _neck(x, y, z, lay: Layout) -> Tensor:
    return sd_vertical_cylinder(x, y, z, lay["neck_c"], lay["neck_radius"], NECK_BOTTOM, lay["neck_top"])


def _hair(x, y, z, lay: Layout) -> Tensor:
    c, r = lay["skull_c"], lay["hair_r"]
    cap = sd_ellipsoid(x, y, z, c, r)
    below = (c[1] - y).clamp_min(0.0)
    curtain = sd_ellipse_xz(x, z, (c[0], c[2]), (r[0] + lay["hair_flare"] * below, r[2]))
    outer = torch.where(y < c[1], curtain, cap)
    depth = z / lay["depth"]
    to_side = smoothstep(-0.20, -0.02, depth)
    to_face = smoothstep(-0.01, 0.07, depth)
    bottom = lay["hair_back_y"] + (lay["hair_side_y"] - lay["hair_back_y"]) * to_side
    limit = bottom + (lay["hairline_y"] - bottom) * to_face
    return torch.maximum(outer, limit - y)


def _ear(x, y, z, centre, radii, side: float) -> Tensor:
    """Flat ellipsoid whose back edge flares away from the head (side: -1 left, +1 right)."""
    dx, dz = side * (x - centre[0]), z - centre[2]
    cos, sin = math.cos(EAR_FLARE), math.sin(EAR_FLARE)
    across = dx * cos + dz * sin
    along = dz * cos - dx * sin
    return sd_ellipsoid(across, y, along, (0.0, centre[1], 0.0), radii)


def _bent_ellipsoid(x, y, z, centre, radii, arch: float, curve: float) -> Tensor:
    """Ellipsoid bent along x: its ends drop by `arch` dx^2 and recede by `curve` dx^2."""
    dx2 = (x - centre[0]) ** 2
    return sd_ellipsoid(x, y + arch * dx2, z + curve * dx2, centre, radii)


def _face_features(x, y, z, lay: Layout) -> dict[str, Tensor]:
    """Nose, eyebrows, lips, eyes and the mouth cavity."""
    cavity = _bent_ellipsoid(x, y, z, lay["cavity_c"], lay["cavity_r"], 0.0, FACE_CURVE)
    nose_bridge = sd_tapered_capsule(x, y, z, lay["nose_bridge_a"], lay["nose_tip"], *lay["nose_radii"])
    brow = lambda side: _bent_ellipsoid(  # noqa: E731
        x, y, z, lay[f"brow_{side}_c"], lay["brow_r"], BROW_ARCH, FACE_CURVE
    )
    return {
        "nose_bridge": nose_bridge,
        "nose_wings": sd_ellipsoid(x, y, z, lay["nose_wings_c"], lay["nose_wings_r"]),
        "brow_left": brow("left"),
        "brow_right": brow("right"),
        "lip_upper": _bent_ellipsoid(x, y, z, lay["lip_upper_c"], lay["lip_upper_r"], 0.0, FACE_CURVE),
        "lip_lower": _bent_ellipsoid(x, y, z, lay["lip_lower_c"], lay["lip_lower_r"], 0.0, FACE_CURVE),
        "eye_left": sd_sphere(x, y, z, lay["eye_left_c"], lay["eye_radius"]),
        "eye_right": sd_sphere(x, y, z, lay["eye_right_c"], lay["eye_radius"]),
        "cavity": cavity + lay["cavity_closed"],
    }


def _left_ear(x, y, z, lay: Layout) -> dict[str, Tensor]:
    return {"ear_left": _ear(x, y, z, lay["ear_left_c"], lay["ear_r"], -1.0)}


def _right_ear(x, y, z, lay: Layout) -> dict[str, Tensor]:
    return {"ear_right": _ear(x, y, z, lay["ear_right_c"], lay["ear_r"], 1.0)}


def _around(centre, extent) -> tuple[Tensor, Tensor]:
    """Box centre +- extent of each head -> (low (B, 1, 3), high (B, 1, 3))."""
    c = torch.stack([v.expand(-1, 1) for v in centre], dim=-1)
    e = torch.stack([v.expand(-1, 1) for v in extent], dim=-1)
    return c - e, c + e


def _union(*boxes: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return (
        torch.stack([b[0] for b in boxes]).amin(dim=0),
        torch.stack([b[1] for b in boxes]).amax(dim=0),
    )


def _face_features_box(lay: Layout) -> tuple[Tensor, Tensor]:
    def bent(radii, arch: float) -> tuple:
        reach = radii[0] ** 2
        return (radii[0], radii[1] + arch * reach, radii[2] + FACE_CURVE * reach)

    nose_reach = torch.maximum(*lay["nose_radii"])
    nose_ends = tuple(zip(lay["nose_bridge_a"], lay["nose_tip"]))
    nose_mid = tuple(0.5 * (a + b) for a, b in nose_ends)
    nose_half = tuple(0.5 * (a - b).abs() + nose_reach for a, b in nose_ends)
    eye = (lay["eye_radius"],) * 3
    cavity = tuple(r + LINING for r in bent(lay["cavity_r"], 0.0))
    return _union(
        _around(nose_mid, nose_half),
        _around(lay["nose_wings_c"], lay["nose_wings_r"]),
        _around(lay["brow_left_c"], bent(lay["brow_r"], BROW_ARCH)),
        _around(lay["brow_right_c"], bent(lay["brow_r"], BROW_ARCH)),
        _around(lay["lip_upper_c"], bent(lay["lip_upper_r"], 0.0)),
        _around(lay["lip_lower_c"], bent(lay["lip_lower_r"], 0.0)),
        _around(lay["cavity_c"], cavity),
        _around(lay["eye_left_c"], eye),
        _around(lay["eye_right_c"], eye),
    )


def _ear_box(lay: Layout, side: str) -> tuple[Tensor, Tensor]:
    reach = torch.maximum(torch.maximum(*lay["ear_r"][:2]), lay["ear_r"][2])
    return _around(lay[f"ear_{side}_c"], (reach,) * 3)


def _local(points: Tensor, lay: Layout, box, fn) -> dict[str, Tensor]:
    """Evaluate `fn` only near `box`; elsewhere each distance is the distance to the box."""
    dist = sd_box(points, *box)
    evaluate = lambda x, y, z, sub, b: fn(x, y, z, sub)  # noqa: E731
    near = _per_head(dist < LOCAL_MARGIN, points, lay, evaluate, dist.unsqueeze(-1))
    return {name: value.squeeze(-1) for name, value in near.items()}


def _evaluate(points: Tensor, params: Tensor) -> tuple[Tensor, Tensor, Layout]:
    """-> (per-component SDFs (B, N, K), whole-head SDF (B, N), layout)."""
    lay = layout(params)
    x, y, z = points.unbind(-1)
    comps: dict[str, Tensor] = {}
    comps["skull"], comps["lower_face"] = _skin_core(x, y, z, lay)
    comps["neck"] = _neck(x, y, z, lay)
    comps["hair"] = _hair(x, y, z, lay)
    comps.update(_local(points, lay, _face_features_box(lay), _face_features))
    comps.update(_local(points, lay, _ear_box(lay, "left"), _left_ear))
    comps.update(_local(points, lay, _ear_box(lay, "right"), _right_ear))
    cavity = comps.pop("cavity")

    skin = smooth_min(comps["skull"], comps["lower_face"], BLEND_FACE)
    skin = smooth_min(skin, comps["neck"], BLEND_NECK)
    skin = smooth_min(skin, torch.minimum(comps["ear_left"], comps["ear_right"]), BLEND_EAR)
    skin = smooth_min(skin, torch.minimum(comps["nose_bridge"], comps["nose_wings"]), BLEND_NOSE)
    solid = torch.minimum(skin, torch.minimum(comps["lip_upper"], comps["lip_lower"]))
    comps["mouth_lining"] = torch.maximum(torch.maximum(solid, cavity - LINING), -cavity)
    for name in ("skull", "lower_face", "nose_bridge", "nose_wings", "lip_upper", "lip_lower"):
        comps[name] = torch.maximum(comps[name], -cavity)

    features = torch.minimum(
        torch.minimum(comps["hair"], torch.minimum(comps["eye_left"], comps["eye_right"])),
        torch.minimum(comps["brow_left"], comps["brow_right"]),
    )
    sdf = torch.minimum(torch.maximum(solid, -cavity), features)
    return torch.stack([comps[name] for name in COMPONENT_NAMES], dim=-1), sdf, lay


def head_sdf_parts(points: Tensor, params: Tensor) -> Tensor:
    """Per-component signed distances (B, N, K); component k belongs to part COMPONENT_PARTS[k]."""
    return _evaluate(points, params.to(device=points.device, dtype=points.dtype))[0]


# ---------------------------------------------------------------- colour


def _skin_colour(tone: Tensor) -> Tensor:
    """Skin tone (B, 1) in [0, 1] -> RGB (B, 3), piecewise linear along SKIN_RAMP."""
    ramp = torch.tensor(SKIN_RAMP, dtype=tone.dtype, device=tone.device)
    pos = tone.clamp(0.0, 1.0) * (len(SKIN_RAMP) - 1)
    lower = pos.floor().clamp(max=len(SKIN_RAMP) - 2)
    frac = pos - lower
    lower = lower.long().squeeze(-1)
    return ramp[lower] * (1.0 - frac) + ramp[lower + 1] * frac


def _component_albedo(params: Tensor) -> Tensor:
    """Constant albedo of every component per head -> (B, K, 3) (eyes are coloured separately)."""
    const = lambda rgb: torch.tensor(rgb, dtype=params.dtype, device=params.device)  # noqa: E731
    skin = _skin_colour(_param(params, "skin_tone"))
    at = PARAM_INDEX
    hair = params[:, at["hair_r"] : at["hair_r"] + 3].clamp(0.0, 1.0)
    pale = const(LIP_PALE) * skin
    lips = pale + (const(LIP_RED) - pale) * _param(params, "lip_redness")
    colours = {
        "hair": hair,
        "brow_left": hair * BROW_SHADE,
        "brow_right": hair * BROW_SHADE,
        "lip_upper": lips,
        "lip_lower": lips,
        "mouth_lining": const(MOUTH_INSIDE).expand_as(skin),
        "eye_left": const(SCLERA).expand_as(skin),
        "eye_right": const(SCLERA).expand_as(skin),
    }
    rows = []
    for name in COMPONENT_NAMES:
        rgb = colours.get(name, skin)
        if name in COMPONENT_TINT:
            rgb = rgb * const(COMPONENT_TINT[name])
        rows.append(rgb)
    return torch.stack(rows, dim=1)


def _eye_colour(x, y, z, iris_rgb: Tensor, lay: Layout) -> Tensor:
    """Sclera / iris / pupil by the angle from the nearer eyeball's forward axis -> (M, 3).

    The angle is measured from a point IRIS_APEX radii behind the eyeball centre, so the iris
    keeps its size through the soft surface layer that a frontal ray integrates over.
    """
    cx = torch.where(x > 0, lay["eye_right_c"][0], lay["eye_left_c"][0])
    qx, qy, qz = x - cx, y - lay["eye_right_c"][1], z - lay["eye_right_c"][2]
    radius = lay["eye_radius"]
    lateral = torch.sqrt(qx * qx + qy * qy)
    ratio = (IRIS_APEX + 1.0) * lateral / (qz + IRIS_APEX * radius).clamp_min(1e-6)
    front = qz > 0
    iris = torch.where(front, 1.0 - smoothstep(IRIS_RADIUS - 0.06, IRIS_RADIUS + 0.02, ratio), 0.0)
    pupil = torch.where(front, 1.0 - smoothstep(PUPIL_RADIUS - 0.04, PUPIL_RADIUS + 0.03, ratio), 0.0)
    rim = 0.8 + 0.2 * (1.0 - ratio / IRIS_RADIUS).clamp(0.0, 1.0)
    sclera = torch.tensor(SCLERA, dtype=x.dtype, device=x.device)
    pupil_rgb = torch.tensor(PUPIL, dtype=x.dtype, device=x.device)
    colour = sclera + (iris_rgb * rim.unsqueeze(-1) - sclera) * iris.unsqueeze(-1)
    return colour + (pupil_rgb - colour) * pupil.unsqueeze(-1)


def _nose_normal(x, y, z, lay: Layout) -> Tensor:
    """Outward normal of the nose (capsule or wing ellipsoid, softly blended) -> (M, 3)."""
    points = torch.stack([x, y, z], dim=-1)
    a = torch.stack(lay["nose_bridge_a"], dim=-1)
    ba = torch.stack(lay["nose_tip"], dim=-1) - a
    pa = points - a
    h = ((pa * ba).sum(-1, keepdim=True) / (ba * ba).sum(-1, keepdim=True)).clamp(0.0, 1.0)
    capsule = F.normalize(pa - ba * h, dim=-1)
    wings_r = torch.stack(lay["nose_wings_r"], dim=-1)
    wings = F.normalize((points - torch.stack(lay["nose_wings_c"], dim=-1)) / wings_r**2, dim=-1)
    gap = sd_ellipsoid(x, y, z, lay["nose_wings_c"], lay["nose_wings_r"]) - sd_tapered_capsule(
        x, y, z, lay["nose_bridge_a"], lay["nose_tip"], *lay["nose_radii"]
    )
    towards_capsule = torch.sigmoid(gap / 0.004).unsqueeze(-1)
    return wings + (capsule - wings) * towards_capsule


def _nostrils(x, y, z, lay: Layout) -> Tensor:
    """Darkening (0..NOSTRIL_DARKNESS) around two nostrils under the front of the wings -> (M, 1)."""
    c, r = lay["nose_wings_c"], lay["nose_wings_r"]
    ny, nz = c[1] - NOSTRIL_PLACE[1] * r[1], c[2] + NOSTRIL_PLACE[2] * r[2]
    radius = NOSTRIL_RADIUS * r[1]
    dark = torch.zeros_like(x)
    for side in (-1.0, 1.0):
        dist = sd_sphere(x, y, z, (c[0] + side * NOSTRIL_PLACE[0] * r[0], ny, nz), radius)
        dark = torch.maximum(dark, 1.0 - smoothstep(0.0, radius, dist))
    return (NOSTRIL_DARKNESS * dark).unsqueeze(-1)


def _closest(parts: Tensor, a: str, b: str) -> Tensor:
    """Distance to the nearer of two components, (B, N, K) -> (B, N)."""
    return torch.minimum(parts[..., COMPONENT_IDS[a]], parts[..., COMPONENT_IDS[b]])


def _shading(points: Tensor, parts: Tensor, lay: Layout) -> Tensor:
    """Lambert term under a fixed light -> (B, N, 1).

    The normal is that of a big ellipsoid around the head, bent toward the nose's own normal near
    the nose, and the nostrils are darkened, so that the nose reads as 3D in frontal views.
    """
    centre = torch.tensor(SHADING_CENTRE, dtype=points.dtype, device=points.device)
    radii = torch.tensor(SHADING_RADII, dtype=points.dtype, device=points.device)
    normal = F.normalize((points - centre) / radii**2, dim=-1)
    nose = _closest(parts, "nose_bridge", "nose_wings")
    weight = (1.0 - nose.clamp_min(0.0) / NOSE_SHADING_WIDTH).clamp_min(0.0) ** 2
    detail = lambda x, y, z, sub, b: {  # noqa: E731
        "normal": _nose_normal(x, y, z, sub),
        "nostrils": _nostrils(x, y, z, sub),
    }
    base = {"normal": normal, "nostrils": torch.zeros_like(normal[..., :1])}
    near_nose = _per_head(weight > 0, points, lay, detail, base)
    nose_normal, nostrils = near_nose["normal"], near_nose["nostrils"]
    normal = F.normalize(normal + (nose_normal - normal) * weight.unsqueeze(-1), dim=-1)
    light = F.normalize(torch.tensor(LIGHT, dtype=points.dtype, device=points.device), dim=0)
    lambert = AMBIENT + DIFFUSE * (normal @ light).clamp_min(0.0).unsqueeze(-1)
    return lambert * (1.0 - nostrils)


# ---------------------------------------------------------------- the field


def query(points: Tensor, params: Tensor) -> dict[str, Tensor]:
    """Evaluate heads `params` (B, P) at `points` (B, N, 3).

    Returns sdf (B, N, 1), raw EG3D density sigma (B, N, 1), rgb (B, N, 3) in [0, 1] and the part
    label (B, N) as int64 indices into PART_NAMES.
    """
    params = params.to(device=points.device, dtype=points.dtype)
    parts, sdf, lay = _evaluate(points, params)

    priority = torch.tensor(_PRIORITY, dtype=parts.dtype, device=parts.device)
    preference = torch.where(parts < 0, 1.0 + priority, TIE_BREAK * priority)
    component = (parts - preference).argmin(dim=-1)

    albedo = torch.gather(_component_albedo(params), 1, component.unsqueeze(-1).expand(-1, -1, 3))
    is_eye = (component == COMPONENT_IDS["eye_left"]) | (component == COMPONENT_IDS["eye_right"])
    at = PARAM_INDEX
    iris = params[:, at["eye_r"] : at["eye_r"] + 3].clamp(0.0, 1.0)
    eye = lambda x, y, z, sub, b: {"rgb": _eye_colour(x, y, z, iris[b], sub)}  # noqa: E731
    albedo = _per_head(is_eye, points, lay, eye, albedo)["rgb"]

    eye_dist = _closest(parts, "eye_left", "eye_right")
    eye_shadow = EYE_SHADOW * torch.exp(-eye_dist.clamp_min(0.0) / EYE_SHADOW_WIDTH)
    occlusion = torch.where(is_eye, 1.0, 1.0 - eye_shadow).unsqueeze(-1)
    rgb = (albedo * _shading(points, parts, lay) * occlusion).clamp(0.0, 1.0)

    in_box = (points.abs() <= BOX_HALF).all(dim=-1)
    sigma = torch.where(in_box, SIGMA_SCALE * torch.tanh(-sdf / SURFACE_WIDTH), -SIGMA_SCALE)
    part_table = torch.tensor(COMPONENT_PARTS, dtype=torch.int64, device=points.device)
    label = torch.where(in_box & (sdf <= LABEL_DISTANCE), part_table[component], 0)
    return {"sdf": sdf.unsqueeze(-1), "sigma": sigma.unsqueeze(-1), "rgb": rgb, "label": label}
