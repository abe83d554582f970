"""Masks: each edit step's mask lands on the vertices inside its region, through seams and glTF."""

import numpy as np
import pytest

from mesh_export import ExportOptions, grid_to_mesh
from mesh_export.colour import sample_masks
from tests.mesh_export.fields import make_grid, sphere_sdf

R = 64
VOXEL = 1.0 / R
ABOVE = 0.1


def _above(p):
    return (p[:, 1] > ABOVE).astype(float)


def _right(p):
    return (p[:, 0] > 0.0).astype(float)


@pytest.fixture(scope="module")
def masked():
    grid = make_grid(R, sphere_sdf(0.3), masks=(_above, _right))
    return grid, grid_to_mesh(grid, ExportOptions(texture_size=128, max_triangles=8000))


def test_one_column_per_edit_step(masked):
    _, mesh = masked
    assert mesh.masks.shape == (len(mesh.vertices), 2) and mesh.masks.dtype == np.float32
    assert mesh.masks.min() >= 0.0 and mesh.masks.max() <= 1.0


@pytest.mark.parametrize("step, region, axis, edge", [(0, _above, 1, ABOVE), (1, _right, 0, 0.0)])
def test_mask_values_land_on_the_right_vertices(masked, step, region, axis, edge):
    _, mesh = masked
    values, coordinate = mesh.masks[:, step], mesh.vertices[:, axis]
    inside, outside = coordinate > edge + VOXEL, coordinate < edge - VOXEL
    assert inside.sum() > 100 and outside.sum() > 100
    np.testing.assert_allclose(values[inside | outside], region(mesh.vertices[inside | outside]), atol=1e-6)


def test_seam_copies_carry_the_same_mask(masked):
    _, mesh = masked
    for step in range(2):
        per_vertex = np.zeros(mesh.welded.max() + 1)
        per_vertex[mesh.welded] = mesh.masks[:, step]
        np.testing.assert_array_equal(per_vertex[mesh.welded], mesh.masks[:, step])


def test_masks_are_trilinear_between_samples():
    grid = make_grid(32, sphere_sdf(0.3), masks=(lambda p: np.clip(0.5 + p[:, 0], 0, 1),))
    points = np.array([[0.013, 0.2, -0.1], [-0.21, 0.0, 0.05]])
    np.testing.assert_allclose(sample_masks(grid, points)[:, 0], 0.5 + points[:, 0], atol=2e-3)


def test_no_edit_steps_gives_no_columns():
    mesh = grid_to_mesh(make_grid(32, sphere_sdf(0.3)), ExportOptions(texture_size=0))
    assert mesh.masks.shape == (len(mesh.vertices), 0)
