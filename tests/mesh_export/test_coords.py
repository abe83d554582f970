"""The one field -> Blender conversion (and glTF's fixed relation to Blender), on an asymmetric head."""

import numpy as np
import pytest

from mesh_export import ExportOptions, blender_to_gltf, field_to_blender, grid_to_mesh
from mesh_export.coords import FIELD_TO_BLENDER_ROTATION, METRES_PER_FIELD_UNIT
from mesh_export.surface import signed_volume
from tests.mesh_export.fields import make_grid, sphere_sdf, union

NOSE = np.array([0.0, -0.02, 0.3])  # the face looks toward field +z
CROWN = np.array([0.0, 0.3, 0.0])  # field y is up
EAR = np.array([0.3, 0.02, 0.0])  # on the head's +x side only


@pytest.fixture(scope="module")
def head():
    sdf = union(
        sphere_sdf(0.22),
        sphere_sdf(0.05, centre=NOSE - [0, 0, 0.04]),
        sphere_sdf(0.06, centre=CROWN - [0, 0.05, 0]),
        sphere_sdf(0.04, centre=EAR - [0.03, 0, 0]),
    )
    return grid_to_mesh(make_grid(64, sdf), ExportOptions(texture_size=0, max_triangles=0))


def test_axes_map_as_documented():
    np.testing.assert_allclose(field_to_blender([[1.0, 2.0, 3.0]], scale=1.0), [[1.0, -3.0, 2.0]])
    np.testing.assert_allclose(field_to_blender([0.0, 0.5, 0.0]), [0.0, 0.0, 0.5 * METRES_PER_FIELD_UNIT], atol=1e-7)
    assert np.linalg.det(FIELD_TO_BLENDER_ROTATION) == pytest.approx(1.0)
    points = np.random.default_rng(0).normal(size=(10, 3))
    np.testing.assert_allclose(blender_to_gltf(field_to_blender(points)), points * METRES_PER_FIELD_UNIT, rtol=1e-5, atol=1e-6)


def test_asymmetric_head_faces_minus_y_and_stands_on_z_in_blender(head):
    blender = head.to_blender()
    assert blender.space == "blender"
    v = blender.vertices
    scale = METRES_PER_FIELD_UNIT
    np.testing.assert_allclose(v[np.argmin(v[:, 1])], field_to_blender(NOSE), atol=0.02 * scale)
    np.testing.assert_allclose(v[np.argmax(v[:, 2])], field_to_blender(CROWN), atol=0.02 * scale)
    np.testing.assert_allclose(v[np.argmax(v[:, 0])], field_to_blender(EAR), atol=0.02 * scale)
    assert -v[:, 0].min() < 0.8 * v[:, 0].max()  # the ear is on +x, not mirrored
    assert np.ptp(v[:, 2]) == pytest.approx(np.ptp(head.vertices[:, 1]) * scale, rel=1e-5)


def test_winding_and_normals_survive_the_conversion(head):
    blender = head.to_blender()
    assert signed_volume(blender.vertices, blender.faces) > 0
    np.testing.assert_allclose(blender.normals, field_to_blender(head.normals, 1.0), atol=1e-6)
    nose = np.argmin(blender.vertices[:, 1])
    assert blender.normals[nose, 1] < -0.9


def test_converting_twice_is_refused(head):
    with pytest.raises(ValueError, match="already in blender space"):
        head.to_blender().to_blender()
