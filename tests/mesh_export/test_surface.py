"""Surface extraction on analytic fields: exact coordinates, closed, outward, no floaters."""

import math

import numpy as np
import pytest

from mesh_export import FieldGrid, FieldGridError
from mesh_export.surface import SurfaceOptions, extract_surface, face_normals_and_areas, signed_volume
from tests.mesh_export.fields import make_grid, sphere_sdf, union

RADIUS = 0.3
WHOLE = SurfaceOptions(max_triangles=0)


@pytest.fixture(scope="module")
def sphere_128() -> FieldGrid:
    return make_grid(128, sphere_sdf(RADIUS))


def _edge_use(faces: np.ndarray) -> np.ndarray:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return counts


@pytest.mark.parametrize("max_triangles", [0, 20_000])
def test_sphere_area_and_volume_within_one_percent_at_128(sphere_128, max_triangles):
    surface = extract_surface(sphere_128, SurfaceOptions(max_triangles=max_triangles))
    if max_triangles:
        assert len(surface.faces) <= max_triangles
    _, areas = face_normals_and_areas(surface.vertices, surface.faces)
    assert areas.sum() == pytest.approx(4 * math.pi * RADIUS**2, rel=0.01)
    assert signed_volume(surface.vertices, surface.faces) == pytest.approx(4 / 3 * math.pi * RADIUS**3, rel=0.01)


def test_vertices_are_in_field_coordinates_for_any_box():
    centre, radius = np.array([0.7, 0.1, -0.2]), 0.45
    sdf = lambda p: np.linalg.norm(p * 2.0 + [0.5, 0.0, 0.0] - centre, axis=-1) - radius  # noqa: E731
    grid = make_grid(64, sdf, surface_width=0.5)
    # the same field on a box of size 2 centred at (0.5, 0, 0): points q = 2 p + (0.5, 0, 0)
    moved = FieldGrid(density=grid.density, rgb=grid.rgb, masks=grid.masks, level=0.0, box_size=2.0, box_centre=np.array([0.5, 0.0, 0.0]))
    surface = extract_surface(moved, WHOLE)
    distance = np.linalg.norm(surface.vertices - centre, axis=1)
    voxel = 2.0 / 64
    assert np.abs(distance - radius).max() < 0.05 * voxel


def test_faces_and_normals_point_outward_and_the_mesh_is_closed(sphere_128):
    surface = extract_surface(sphere_128, WHOLE)
    radial = surface.vertices / np.linalg.norm(surface.vertices, axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", surface.normals, radial) > 0.9).all()
    face_normals, _ = face_normals_and_areas(surface.vertices, surface.faces)
    centres = surface.vertices[surface.faces].mean(axis=1)
    assert (np.einsum("ij,ij->i", face_normals, centres) > 0).all()
    assert (_edge_use(surface.faces) == 2).all()
    assert surface.vertices.dtype == np.float32 and surface.faces.dtype == np.int32


def test_floaters_are_dropped_and_kept_on_request():
    # a speck of 0.16 % of the head's area: below the default 0.2 %
    grid = make_grid(96, union(sphere_sdf(RADIUS), sphere_sdf(0.012, centre=(0.3, 0.3, 0.0))))
    kept = extract_surface(grid, SurfaceOptions(max_triangles=0, min_component_fraction=0.0))
    cleaned = extract_surface(grid, WHOLE)
    assert (np.linalg.norm(kept.vertices - [0.3, 0.3, 0.0], axis=1) < 0.03).any()
    assert np.linalg.norm(cleaned.vertices, axis=1).max() < RADIUS + 0.01


def test_border_is_cleared_and_the_cut_is_closed():
    # an infinite cylinder along y: it meets the top and bottom walls of the box
    grid = make_grid(64, lambda p: np.hypot(p[:, 0], p[:, 2]) - 0.2)
    cleared = extract_surface(grid, SurfaceOptions(max_triangles=0))
    border = round(30 / 256 * 64) / 64
    assert np.abs(cleared.vertices[:, 1]).max() <= 0.5 - border + 1e-6
    assert (_edge_use(cleared.faces) == 2).all()
    whole = extract_surface(grid, SurfaceOptions(max_triangles=0, border_fraction=0.0))
    assert np.abs(whole.vertices[:, 1]).max() > 0.49 and (_edge_use(whole.faces) == 2).all()
    assert signed_volume(whole.vertices, whole.faces) > signed_volume(cleared.vertices, cleared.faces) > 0


def test_level_comes_from_the_grid():
    base = make_grid(48, sphere_sdf(RADIUS))
    shifted = FieldGrid(density=base.density + np.float32(10.0), rgb=base.rgb, masks=base.masks, level=10.0)
    a, b = extract_surface(base, WHOLE), extract_surface(shifted, WHOLE)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-5)


def test_a_grid_without_surface_says_so():
    grid = make_grid(32, sphere_sdf(0.3))
    empty = FieldGrid(density=grid.density, rgb=grid.rgb, masks=grid.masks, level=100.0)
    with pytest.raises(FieldGridError, match="no surface at level 100"):
        extract_surface(empty)


def test_a_grid_of_noise_is_refused_before_marching_cubes():
    """A checkerboard crosses every cell: 218 kB deflated at 256^3, it took 6 GB to mesh. The
    count before meshing refuses it in one sentence; a head's surface is far under the limit."""
    from dataclasses import replace

    from mesh_export.surface import MAX_SURFACE_CELLS, surface_cells

    head = make_grid(64, sphere_sdf(0.3))
    assert 0 < surface_cells(head.density, head.level) < MAX_SURFACE_CELLS // 100
    resolution = 160
    checker = np.indices((resolution,) * 3).sum(axis=0) % 2
    noise = replace(make_grid(resolution, sphere_sdf(0.3)), density=np.where(checker, 50.0, -50.0).astype(np.float32))
    assert surface_cells(noise.density, noise.level) > MAX_SURFACE_CELLS
    with pytest.raises(FieldGridError, match="noise") as error:
        extract_surface(noise, SurfaceOptions(border_fraction=0.0))
    assert "\n" not in str(error.value)
