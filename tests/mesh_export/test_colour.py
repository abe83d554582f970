"""Colour: vertex colours and the baked texture land where the field says, seams included."""

import numpy as np
import pytest

from mesh_export import ExportOptions, grid_to_mesh
from mesh_export.surface import face_normals_and_areas
from tests.mesh_export.fields import linear_colour, make_grid, sphere_sdf

TEXTURE = 256
RED, BLUE = np.array([0.9, 0.1, 0.1]), np.array([0.1, 0.1, 0.9])


def _nearest_texel(texture: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """Written independently of mesh_export: u right, v up, row 0 at the top."""
    size = texture.shape[0]
    column = np.clip(np.floor(uvs[:, 0] * size), 0, size - 1).astype(int)
    row = np.clip(np.floor((1.0 - uvs[:, 1]) * size), 0, size - 1).astype(int)
    return texture[row, column].astype(np.float64) / 255.0


def _surface_samples(mesh, count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    _, areas = face_normals_and_areas(mesh.vertices, mesh.faces)
    face = rng.choice(len(mesh.faces), count, p=areas / areas.sum())
    bary = rng.dirichlet((1.0, 1.0, 1.0), count)
    corners = mesh.faces[face]
    points = np.einsum("kc,kcj->kj", bary, mesh.vertices[corners].astype(np.float64))
    uvs = np.einsum("kc,kcj->kj", bary, mesh.uvs[corners].astype(np.float64))
    return points, uvs


@pytest.fixture(scope="module")
def linear_mesh():
    grid = make_grid(64, sphere_sdf(0.3), colour=linear_colour)
    return grid_to_mesh(grid, ExportOptions(texture_size=TEXTURE))


def test_vertex_colours_are_the_field_colour_at_each_vertex(linear_mesh):
    np.testing.assert_allclose(linear_mesh.colours, linear_colour(linear_mesh.vertices), atol=1e-4)


def test_texture_texels_hold_the_colour_of_their_surface_point(linear_mesh):
    points, uvs = _surface_samples(linear_mesh, 20_000)
    error = np.abs(_nearest_texel(linear_mesh.texture, uvs) - linear_colour(points))
    assert error.mean() < 0.005 and error.max() < 0.03


def test_a_two_colour_pattern_lands_on_the_right_texels():
    pattern = lambda p: np.where((p[:, 0] > 0)[:, None], RED, BLUE)  # noqa: E731
    grid = make_grid(64, sphere_sdf(0.3), colour=pattern, rgb_dtype=np.uint8)
    mesh = grid_to_mesh(grid, ExportOptions(texture_size=TEXTURE))
    points, uvs = _surface_samples(mesh, 20_000)
    away = np.abs(points[:, 0]) > 2.0 / 64
    expected = pattern(points[away])
    np.testing.assert_allclose(_nearest_texel(mesh.texture, uvs[away]), expected, atol=2 / 255)


def test_seams_do_not_bleed(linear_mesh):
    mesh = linear_mesh
    order = np.argsort(mesh.welded, kind="stable")
    same = mesh.welded[order][1:] == mesh.welded[order][:-1]
    first, second = order[:-1][same], order[1:][same]
    moved = np.abs(mesh.uvs[first] - mesh.uvs[second]).max(axis=1) > 2.0 / TEXTURE
    assert moved.sum() > 50, "a sphere's atlas has seams"
    for copies in (first[moved], second[moved]):
        error = np.abs(_nearest_texel(mesh.texture, mesh.uvs[copies]) - linear_colour(mesh.vertices[copies]))
        assert error.max() < 0.03


def test_every_texel_is_filled(linear_mesh):
    assert linear_mesh.texture.shape == (TEXTURE, TEXTURE, 3) and linear_mesh.texture.dtype == np.uint8
    assert linear_mesh.texture.min() >= np.floor(0.2 * 255) - 1


def test_vertex_colours_only_without_a_texture():
    mesh = grid_to_mesh(make_grid(32, sphere_sdf(0.3)), ExportOptions(texture_size=0))
    assert mesh.texture is None and mesh.uvs.shape == (len(mesh.vertices), 0)
    np.testing.assert_allclose(mesh.colours, linear_colour(mesh.vertices), atol=1e-4)


def test_the_texture_is_baked_in_pieces_with_the_same_texels(monkeypatch):
    """Baking writes each rasterised piece into the texture (an 8192^2 one held 8 GB of coverage
    at once): pieces of any size give the same texture as one piece."""
    from mesh_export import raster

    grid = make_grid(48, sphere_sdf(0.3), colour=linear_colour)
    whole = grid_to_mesh(grid, ExportOptions(texture_size=TEXTURE))
    monkeypatch.setattr(raster, "CHUNK_CANDIDATES", 4096)
    pieces = grid_to_mesh(grid, ExportOptions(texture_size=TEXTURE))
    assert len(list(raster.cover_in_chunks(pieces.uvs[pieces.faces] * TEXTURE))) > 10, "baked in many pieces"
    np.testing.assert_array_equal(pieces.texture, whole.texture)
