"""The sparse sampler (bridge/field/grid.py) gives the dense grid's mesh: same surface (Chamfer
distance in voxels), the same colour (PSNR) and masks at its vertices, on an analytic head with
thin parts a coarse pass steps over (an ear 1.5 voxels thick, a mouth slot 1.5 voxels wide) and
on the prior's head with an edit."""

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from bridge.field.grid import sample_grid
from mesh_export.colour import sample_masks, sample_rgb
from mesh_export.surface import SurfaceOptions, extract_surface


def thin_parts_head(resolution: int):
    """A ball with an ear (a plate thinner than two voxels, off the coarse lattices) and an open
    mouth (a slot as narrow, cut into the ball); sigma is 40 x the signed distance (inside > 0)."""
    voxel = 1.0 / resolution
    half = 0.75 * voxel

    def field(points: torch.Tensor) -> dict[str, torch.Tensor]:
        x, y, z = points[0].unbind(-1)
        ball = 0.25 - torch.sqrt(x**2 + y**2 + z**2)
        ear = torch.minimum(half - (z - 0.5 * voxel).abs(), torch.minimum(0.42 - x.abs(), 0.08 - (y - 0.05).abs()))
        ear = torch.where(x > 0, ear, torch.full_like(ear, -1.0))
        mouth = torch.minimum(half - (y + 0.1).abs(), torch.minimum(0.3 - x.abs(), z - 0.05))  # inside the slot
        distance = torch.maximum(torch.minimum(ball, -mouth), ear)
        rgb = torch.stack([0.5 + 0.5 * torch.sin(9 * x), 0.5 + 0.5 * torch.cos(7 * y), (z + 0.5).clamp(0, 1)], -1)
        mask = torch.sigmoid((x - 0.1) * 40)[..., None]
        return {"sigma": 40 * distance[None, :, None], "rgb": rgb[None], "masks": mask[None]}

    return field


def agreement(field, resolution: int, level: float) -> dict:
    sparse = sample_grid(field, resolution, level, chunk=1 << 16)
    dense = sample_grid(field, resolution, level, chunk=1 << 16, sparse=False)
    options = SurfaceOptions(max_triangles=0, min_component_fraction=0.0)
    theirs, ours = extract_surface(dense, options), extract_surface(sparse, options)
    a, b = cKDTree(theirs.vertices), cKDTree(ours.vertices)
    chamfer = (a.query(ours.vertices)[0].mean() + b.query(theirs.vertices)[0].mean()) / 2 / dense.voxel_size
    mse = np.mean((sample_rgb(dense, theirs.vertices) - sample_rgb(sparse, theirs.vertices)) ** 2)
    return {
        "chamfer_voxels": chamfer,
        "psnr": 10 * np.log10(1 / max(mse, 1e-12)),
        "mask_max_abs": float(np.abs(sample_masks(dense, theirs.vertices) - sample_masks(sparse, theirs.vertices)).max()),
        "vertices": (len(theirs.vertices), len(ours.vertices)),
        "evaluated": sparse.provenance["sampling"]["evaluated"],
        "dense": dense,
        "sparse": sparse,
    }


@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_thin_parts_are_followed_and_the_mesh_is_the_dense_one(resolution):
    result = agreement(thin_parts_head(resolution), resolution, 0.0)
    assert result["vertices"][0] == result["vertices"][1]
    assert result["chamfer_voxels"] <= 0.05 and result["psnr"] >= 40 and result["mask_max_abs"] <= 0.02, result
    assert result["evaluated"] < 0.25, "the sparse sampler evaluated most of the grid"
    dense = result["dense"]
    ear = dense.density[int(resolution * 0.85), :, :]  # a slice through the ear, far from the ball
    assert (ear > 0).any() and (result["sparse"].density[int(resolution * 0.85)] > 0).sum() == (ear > 0).sum()


def test_without_following_the_surface_the_thin_parts_would_be_lost():
    """The coarse lattice alone misses the ear and the mouth: what the closure has to find."""
    resolution = 128
    field = thin_parts_head(resolution)
    coarse = sample_grid(field, resolution // 4, 0.0, sparse=False)
    assert not (coarse.density[int(resolution // 4 * 0.85)] > 0).any()


def test_the_prior_head_with_an_edit_meshes_as_the_dense_grid():
    from bridge.lenerf.apply import EditStep, apply_edits
    from bridge.lenerf.edit_module import BUNDLED_LIBRARY, EditLibrary
    from bridge.prior.model import HeadPrior

    prior = HeadPrior.load(None)
    module = EditLibrary(BUNDLED_LIBRARY, generator_sha256=prior.sha256).load("open_mouth")
    ws, _ = prior.head_ws(3)
    with torch.no_grad():
        field, _ = apply_edits(prior.generator, ws[None], [EditStep(module, 1.0)])
        result = agreement(field, 64, prior.surface_level)
    assert result["chamfer_voxels"] <= 0.5 and result["psnr"] >= 40 and result["mask_max_abs"] <= 0.02, result
    assert result["evaluated"] < 0.3
