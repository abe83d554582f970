"""Sampling fields on the FieldGrid lattice: density, colour and per-step edit masks."""

import numpy as np
import torch

from bridge.field.grid import sample_grid


def _ball_field(points):
    """A ball of radius 0.25 with colour = position and two 'edit masks' (x > 0, y > 0)."""
    inside = 0.25 - points.norm(dim=-1, keepdim=True)
    masks = torch.cat([(points[..., :1] > 0).float(), (points[..., 1:2] > 0).float()], dim=-1)
    return {"sigma": 100 * inside, "rgb": points + 0.5, "masks": masks}


def test_grid_keeps_density_colour_and_every_mask_in_xyz_order():
    grid = sample_grid(_ball_field, 16, level=0.0, box_size=1.0, provenance={"test": True}, chunk=1000)
    assert grid.density.shape == (16, 16, 16) and grid.edit_steps == 2
    centre = (0.5 + np.arange(16)) / 16 - 0.5
    assert np.isclose(grid.density[8, 8, 8], 100 * (0.25 - np.sqrt(3) * centre[8]), atol=1e-3)
    assert grid.masks[0][12, 3, 3] == 1 and grid.masks[0][3, 12, 12] == 0  # mask 0 follows x
    assert grid.masks[1][3, 12, 3] == 1 and grid.masks[1][12, 3, 12] == 0  # mask 1 follows y
    assert grid.rgb[15, 0, 0, 0] > 240 and grid.rgb[15, 0, 0, 1] < 15  # rgb = position: x high, y low


def test_a_field_without_masks_gives_a_grid_without_masks():
    grid = sample_grid(lambda p: {k: v for k, v in _ball_field(p).items() if k != "masks"}, 16, level=0.0)
    assert grid.edit_steps == 0
