"""mesh_export: speed and colour fidelity, on an analytic head-like field made here with numpy.

- mc_s_128, mc_s_256: surface extraction without decimation (border clearing, crop, marching cubes,
  floater removal, outward normals) on a 128^3 / 256^3 grid.
- atlas_s_256: UV charts + xatlas packing of the 256^3 surface.
- texture_s_1k: baking the 1024^2 texture of the 256^3 surface (rasterise, sample, dilate).
- total_s_256: grid file on disk -> textured, masked mesh in memory (read + grid_to_mesh with the
  default options: 1024^2 texture, 200k triangle budget).
- triangles_256, charts_256: the size of that mesh and its atlas.
- color_psnr_db: the baked texture, looked up bilinearly at random surface points as a renderer
  would, against the field's own colour (trilinear in the grid) at the same points;
  vertex_color_psnr_db: the same with vertex colours instead, for comparison.
- glb_s_256, glb_mb_256: writing that mesh as .glb, and its size.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import mesh_export
from mesh_export.colour import bake_texture, sample_rgb, sample_texture
from mesh_export.fieldgrid import axis_coordinates
from mesh_export.surface import SurfaceOptions, extract_surface, face_normals_and_areas
from mesh_export.uv import build_atlas

SIGMA_SCALE = 50.0
SURFACE_WIDTH = 0.012
SMOOTH_UNION = 0.03
PSNR_SAMPLES = 200_000
SLAB = 16

# (centre, radii) of the ellipsoids whose smooth union is the head.
SKULL = ((0.0, 0.05, -0.02), (0.19, 0.23, 0.21))
FACE = ((0.0, -0.08, 0.04), (0.15, 0.16, 0.16))
NOSE = ((0.0, -0.04, 0.2), (0.025, 0.05, 0.04))
EARS = (((0.19, -0.02, -0.02), (0.025, 0.06, 0.04)), ((-0.19, -0.02, -0.02), (0.025, 0.06, 0.04)))
NECK = ((0.0, -0.3, -0.03), (0.085, 0.2, 0.085))
EYES = ((0.06, 0.0, 0.17), (-0.06, 0.0, 0.17))
EYE_RADIUS = 0.03
SKIN = np.array([0.87, 0.66, 0.50])
HAIR = np.array([0.30, 0.18, 0.08])
IRIS = np.array([0.15, 0.35, 0.80])


def _ellipsoid(points: np.ndarray, centre, radii) -> np.ndarray:
    """Approximate signed distance (N,) to an axis-aligned ellipsoid."""
    radii = np.asarray(radii)
    scaled = np.linalg.norm((points - np.asarray(centre)) / radii, axis=-1)
    return (scaled - 1.0) * radii.min()


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def head_sdf(points: np.ndarray) -> np.ndarray:
    """(N, 3) field points -> (N,) approximate signed distance of the analytic head (negative inside)."""
    sdf = _ellipsoid(points, *SKULL)
    for centre, radii in (FACE, NOSE, *EARS, NECK):
        sdf = _smooth_min(sdf, _ellipsoid(points, centre, radii), SMOOTH_UNION)
    return sdf


def head_colour(points: np.ndarray) -> np.ndarray:
    """(N, 3) field points -> (N, 3) colour in [0, 1]: skin with a fine stripe pattern, hair above a
    wavy line, two blue eyes."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    stripes = 0.08 * np.sin(90.0 * x) * np.sin(70.0 * y + 30.0 * z)
    rgb = SKIN[None] * (1.0 + stripes[:, None])
    hairline = 0.12 + 0.03 * np.sin(25.0 * x) - 0.25 * np.clip(-z, 0.0, None)
    rgb = np.where((y > hairline)[:, None], HAIR[None] * (1.0 + 1.5 * stripes[:, None]), rgb)
    for centre in EYES:
        near = np.linalg.norm(points - np.asarray(centre), axis=1) < EYE_RADIUS
        rgb = np.where(near[:, None], IRIS[None], rgb)
    return np.clip(rgb, 0.0, 1.0)


def head_grid(resolution: int) -> mesh_export.FieldGrid:
    """The analytic head on a voxel-centred grid over [-0.5, 0.5]^3, with one mask (the eyes)."""
    axis = axis_coordinates(resolution)
    density = np.empty((resolution,) * 3, dtype=np.float32)
    rgb = np.empty((resolution,) * 3 + (3,), dtype=np.uint8)
    mask = np.empty((resolution,) * 3, dtype=np.float16)
    y, z = np.meshgrid(axis, axis, indexing="ij")
    for start in range(0, resolution, SLAB):
        xs = axis[start : start + SLAB]
        points = np.stack(np.broadcast_arrays(xs[:, None, None], y[None], z[None]), axis=-1).reshape(-1, 3)
        shape = (len(xs), resolution, resolution)
        density[start : start + SLAB] = (SIGMA_SCALE * np.tanh(-head_sdf(points) / SURFACE_WIDTH)).reshape(shape)
        rgb[start : start + SLAB] = np.rint(head_colour(points) * 255).reshape(*shape, 3)
        eyes = np.minimum(*(np.linalg.norm(points - np.asarray(c), axis=1) for c in EYES))
        mask[start : start + SLAB] = np.clip((0.06 - eyes) / 0.02, 0.0, 1.0).reshape(shape)
    provenance = {"source": "benchmarks.mesh analytic head", "resolution": resolution}
    return mesh_export.FieldGrid(
        density=density, rgb=rgb, masks=mask[None], level=0.0, box_size=1.0, box_centre=np.zeros(3), provenance=provenance
    )


def _best_of(repeats: int, fn):
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / np.mean((a - b) ** 2)))


def colour_fidelity(grid: mesh_export.FieldGrid, mesh: mesh_export.TexturedMesh, samples: int, seed: int = 0) -> dict:
    """PSNR of texture and vertex colours against the grid's colour at random surface points."""
    rng = np.random.default_rng(seed)
    _, areas = face_normals_and_areas(mesh.vertices, mesh.faces)
    face = rng.choice(len(mesh.faces), samples, p=areas / areas.sum())
    bary = rng.dirichlet((1.0, 1.0, 1.0), samples)
    corners = mesh.faces[face]
    points = np.einsum("kc,kcj->kj", bary, mesh.vertices[corners].astype(np.float64))
    truth = sample_rgb(grid, points)
    texture = sample_texture(mesh.texture, np.einsum("kc,kcj->kj", bary, mesh.uvs[corners]))
    vertex = np.einsum("kc,kcj->kj", bary, mesh.colours[corners])
    return {"color_psnr_db": round(_psnr(texture, truth), 2), "vertex_color_psnr_db": round(_psnr(vertex, truth), 2)}


def run(quick: bool = False) -> dict:
    repeats = 1 if quick else 3
    grid_128 = head_grid(128)
    grid_256 = head_grid(256)
    whole = SurfaceOptions(max_triangles=0)
    mc_128, _ = _best_of(repeats, lambda: extract_surface(grid_128, whole))
    mc_256, surface = _best_of(repeats, lambda: extract_surface(grid_256, whole))
    atlas_s, atlas = _best_of(repeats, lambda: build_atlas(surface.vertices, surface.faces, 1024))
    vertices = surface.vertices[atlas.vertex_source]
    texture_s, _ = _best_of(repeats, lambda: bake_texture(grid_256, vertices, atlas.faces, atlas.uvs, 1024))

    with tempfile.TemporaryDirectory() as folder:
        path = mesh_export.write(grid_256, Path(folder) / "field.npz")
        total_s, mesh = _best_of(repeats, lambda: mesh_export.grid_to_mesh(mesh_export.read(path)))
        glb_s, glb = _best_of(repeats, lambda: mesh_export.write_glb(mesh, Path(folder) / "head.glb"))
        glb_mb = glb.stat().st_size / 2**20
    return {
        "mc_s_128": round(mc_128, 3),
        "mc_s_256": round(mc_256, 3),
        "atlas_s_256": round(atlas_s, 3),
        "texture_s_1k": round(texture_s, 3),
        "total_s_256": round(total_s, 3),
        "triangles_256": int(len(mesh.faces)),
        "charts_256": int(mesh.provenance["mesh_export"]["charts"]),
        **colour_fidelity(grid_256, mesh, PSNR_SAMPLES // (4 if quick else 1)),
        "glb_s_256": round(glb_s, 3),
        "glb_mb_256": round(glb_mb, 2),
        "texture_size": 1024,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "quick": quick,
    }
