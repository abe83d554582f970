"""grid_to_mesh end to end: stages, options, provenance, the grid's accepted dtypes."""

import numpy as np
import pytest

from mesh_export import ExportOptions, FieldGrid, grid_to_mesh
from tests.mesh_export.fields import make_grid, sphere_sdf


@pytest.fixture(scope="module")
def grid() -> FieldGrid:
    return make_grid(32, sphere_sdf(0.3), provenance={"seed": 11})


def test_progress_reports_each_stage_in_order_and_can_cancel(grid):
    seen = []
    grid_to_mesh(grid, ExportOptions(texture_size=64), progress=lambda stage, fraction: seen.append((stage, fraction)))
    assert [stage for stage, _ in seen] == ["surface", "uv atlas", "texture layout", "colours and masks", "texture", "done"]
    assert [f for _, f in seen] == sorted(f for _, f in seen) and seen[-1][1] == 1.0

    def cancel(stage, fraction):
        if stage == "uv atlas":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grid_to_mesh(grid, ExportOptions(texture_size=64), progress=cancel)


def test_provenance_keeps_the_grid_s_and_adds_how_the_mesh_was_made(grid):
    mesh = grid_to_mesh(grid, ExportOptions(texture_size=64, max_triangles=500))
    assert mesh.provenance["seed"] == 11
    made = mesh.provenance["mesh_export"]
    assert made["options"]["max_triangles"] == 500 and made["triangles"] == len(mesh.faces) <= 500
    assert made["level"] == 0.0 and made["grid_resolution"] == 32


@pytest.mark.parametrize("rgb_dtype", [np.uint8, np.float16, np.float32])
def test_every_accepted_colour_dtype_gives_the_same_colours(rgb_dtype):
    mesh = grid_to_mesh(make_grid(32, sphere_sdf(0.3), rgb_dtype=rgb_dtype), ExportOptions(texture_size=0))
    np.testing.assert_allclose(mesh.colours, np.clip(0.5 + mesh.vertices, 0, 1), atol=2.5 / 255)


def test_float16_density_is_accepted(grid):
    half = FieldGrid(density=grid.density.astype(np.float16), rgb=grid.rgb, masks=grid.masks, level=0.0)
    a = grid_to_mesh(grid, ExportOptions(texture_size=0, max_triangles=0))
    b = grid_to_mesh(half, ExportOptions(texture_size=0, max_triangles=0))
    assert a.faces.shape == b.faces.shape and np.abs(a.vertices - b.vertices).max() < 1e-3


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="texture_size"):
        ExportOptions(texture_size=10)
    with pytest.raises(ValueError, match="max_triangles"):
        ExportOptions(max_triangles=-1)


def test_a_grid_with_the_same_density_is_re_coloured_on_the_kept_surface():
    """A colour edit keeps its head's density: with a SurfaceCache the second mesh skips marching
    cubes, the UV atlas and rasterising, and is what meshing from scratch would give."""
    from dataclasses import replace

    from mesh_export import SurfaceCache

    red = make_grid(40, sphere_sdf(0.3), colour=lambda p: np.clip(0.5 + p * [1, 0, 0], 0, 1), masks=(lambda p: p[:, 0] > 0,))
    blue = replace(red, rgb=np.ascontiguousarray(red.rgb[..., ::-1]), masks=(1 - red.masks.astype(np.float32)).astype(np.float16))
    moved = make_grid(40, sphere_sdf(0.28))
    options, cache = ExportOptions(texture_size=128), SurfaceCache()
    stages = []
    first = grid_to_mesh(red, options, cache=cache)
    again = grid_to_mesh(blue, options, progress=lambda stage, fraction: stages.append(stage), cache=cache)
    fresh = grid_to_mesh(blue, options)
    assert not first.provenance["mesh_export"]["surface_reused"] and again.provenance["mesh_export"]["surface_reused"]
    assert "surface" not in stages and "uv atlas" not in stages, "nothing meshed again"
    for name in ("vertices", "faces", "uvs", "normals", "colours", "masks", "texture", "welded"):
        np.testing.assert_array_equal(getattr(again, name), getattr(fresh, name), err_msg=name)
    assert not np.array_equal(again.texture, first.texture), "the new colours, not the kept ones"
    other = grid_to_mesh(moved, options, cache=cache)
    assert not other.provenance["mesh_export"]["surface_reused"] and len(other.vertices) != len(first.vertices)
    assert not grid_to_mesh(red, ExportOptions(texture_size=256), cache=cache).provenance["mesh_export"]["surface_reused"], "other options"
