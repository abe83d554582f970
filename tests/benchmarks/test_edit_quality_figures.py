"""The definitions behind edit_quality's figures, on points whose answer is known."""

import pytest
import torch

from benchmarks.edit_quality import MOUTH_OPENED, ground_truth_edit, part_iou_3d
from bridge.lenerf.edit_module import EditSpec


def test_part_iou_counts_the_matter_of_the_part_not_the_air_beside_it():
    sdf = torch.tensor([-0.05, -0.015, -0.005, 0.0, 0.005, 0.015, 0.05])
    part = torch.tensor([True, True, True, True, True, True, False])  # the nearest part, inside and out
    mask = sdf <= 0  # an attention field that is 1 on the part's matter and 0 in empty space
    volume, band = part_iou_3d(mask, part, sdf)
    assert volume == 1.0  # the three points of the outer 0.02 of matter; deeper ones are not counted
    assert band == pytest.approx(3 / 5)  # the band also asks for the mask in the air next to the part
    assert part_iou_3d(~mask, part, sdf)[0] == 0.0


def test_the_ground_truth_edit_is_read_from_the_prompts():
    assert ground_truth_edit(EditSpec("blue eyes", "eyes")) == {"eye_colour": "blue"}
    assert ground_truth_edit(EditSpec("red hair", "the hair")) == {"hair_colour": "red"}
    assert ground_truth_edit(EditSpec("open mouth", "mouth", geometry=True)) == {"mouth_open": MOUTH_OPENED}
    assert ground_truth_edit(EditSpec("a smile", "mouth", geometry=True)) == {}
