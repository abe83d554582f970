"""The UV atlas: one-to-one (no two faces share a texel), same winding, inside the unit square."""

import numpy as np
import pytest

from mesh_export import uv
from mesh_export.raster import cover
from mesh_export.surface import SurfaceOptions, extract_surface
from mesh_export.uv import build_atlas, face_neighbours
from tests.mesh_export.fields import make_grid, sphere_sdf

TEXTURE = 512


FLARE = 0.5


def _flared_ear(p: np.ndarray) -> np.ndarray:
    """A thin flap whose front edge sinks into the ball and whose back edge flares away from it."""
    d = p - np.array([0.255, 0.0, -0.04])
    across = d[:, 0] * np.cos(FLARE) + d[:, 2] * np.sin(FLARE)
    along = d[:, 2] * np.cos(FLARE) - d[:, 0] * np.sin(FLARE)
    return (np.linalg.norm(np.stack([across / 0.015, d[:, 1] / 0.08, along / 0.07], axis=1), axis=1) - 1) * 0.015


def _smooth_union(a: np.ndarray, b: np.ndarray, k: float = 0.02) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _eared_surface():
    """Like a head's ear: the ear's outer face and the ball behind its rim face the same way and are
    joined around the ear's root, so one projection would fold them onto each other."""
    sdf = lambda p: _smooth_union(sphere_sdf(0.25)(p), _flared_ear(p))  # noqa: E731
    return extract_surface(make_grid(96, sdf), SurfaceOptions(max_triangles=0))


@pytest.fixture(scope="module")
def eared():
    surface = _eared_surface()
    return surface, build_atlas(surface.vertices, surface.faces, TEXTURE)


def _shared_texels(atlas) -> int:
    coverage = cover((atlas.uvs * TEXTURE - 0.5)[atlas.faces], strict=True)
    keys = coverage.ij[:, 0] * TEXTURE + coverage.ij[:, 1]
    return len(keys) - len(np.unique(keys))


def _signed_uv_area(uvs: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = uvs[faces[:, 0]], uvs[faces[:, 1]], uvs[faces[:, 2]]
    return 0.5 * ((b - a)[:, 0] * (c - a)[:, 1] - (c - a)[:, 0] * (b - a)[:, 1])


def test_atlas_copies_the_surface(eared):
    surface, atlas = eared
    assert atlas.faces.shape == surface.faces.shape
    np.testing.assert_array_equal(atlas.vertex_source[atlas.faces], surface.faces)
    assert atlas.uvs.min() >= 0.0 and atlas.uvs.max() <= 1.0
    assert 1 < atlas.chart_count < len(surface.faces) // 20


def test_no_two_faces_share_a_texel(eared):
    assert _shared_texels(eared[1]) == 0


def test_without_the_overlap_split_the_ear_would_cover_the_ball(eared, monkeypatch):
    surface, _ = eared
    monkeypatch.setattr(uv, "_hidden_faces", lambda vertices, faces, *rest: np.zeros(len(faces), dtype=bool))
    assert _shared_texels(build_atlas(surface.vertices, surface.faces, TEXTURE)) > 20


def test_faces_keep_their_winding_in_uv(eared):
    _, atlas = eared
    area = _signed_uv_area(atlas.uvs, atlas.faces)
    assert (area >= 0).all() and (area > 0).mean() > 0.99


def test_neighbours_across_each_edge():
    faces = np.array([[0, 1, 2], [2, 1, 3], [3, 1, 4]])
    assert face_neighbours(faces).tolist() == [[-1, 1, -1], [0, 2, -1], [1, -1, -1]]
    fan = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])  # edge 0-1 shared by three faces
    assert (face_neighbours(fan)[:, 0] == -1).all()
