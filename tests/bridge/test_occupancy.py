"""Empty-space skipping (bridge/field/occupancy.py) renders the same picture as evaluating every
sample, while evaluating far fewer."""

import torch

from bridge.field.occupancy import Occupancy
from bridge.lenerf.apply import EditStep, apply_edits
from bridge.lenerf.edit_module import BUNDLED_LIBRARY, EditLibrary
from bridge.prior.model import HeadPrior


def test_a_skipping_render_is_the_full_render_from_a_fraction_of_the_samples():
    prior = HeadPrior.load(None)
    module = EditLibrary(BUNDLED_LIBRARY, generator_sha256=prior.sha256).load("open_mouth")
    ws, _ = prior.head_ws(3)
    evaluated = {"full": 0, "skipping": 0}

    def counted(field, key):
        def evaluate(points):
            evaluated[key] += points.shape[1]
            return field(points)

        return evaluate

    with torch.no_grad():
        field, edited_ws = apply_edits(prior.generator, ws[None], [EditStep(module, 1.0)])
        occupancy = Occupancy.probe(field, prior.render_config.box_size)
        full = prior.view(counted(field, "full"), edited_ws, 30.0, 48, ("rgb", "mask"))
        fast = prior.view(occupancy.skipping(counted(field, "skipping")), edited_ws, 30.0, 48, ("rgb", "mask"))
    assert 0.02 < occupancy.fraction < 0.5
    assert evaluated["skipping"] < 0.5 * evaluated["full"]
    assert (full["rgb"] - fast["rgb"]).abs().max() < 1e-4 and (full["mask"] - fast["mask"]).abs().max() < 1e-4


def test_points_outside_the_box_or_in_empty_cells_are_not_occupied():
    occupied = torch.zeros(4, 4, 4, dtype=torch.bool)
    occupied[0, 0, 0] = True
    occupancy = Occupancy(occupied, box_size=1.0)
    points = torch.tensor([[[-0.4, -0.4, -0.4], [0.4, 0.4, 0.4], [-0.6, -0.4, -0.4]]])
    assert occupancy(points).tolist() == [[True, False, False]]
    out = occupancy.skipping(lambda p: {"sigma": torch.ones(*p.shape[:2], 1), "rgb": torch.ones(*p.shape[:2], 3)})(points)
    assert out["sigma"][0, :, 0].tolist() == [1.0, -100.0, -100.0] and out["rgb"][0, 1].tolist() == [0, 0, 0]


def test_points_outside_the_box_are_evaluated_when_renders_do_not_clamp_to_it():
    """Imported EG3D generators render samples outside the box (clamp_to_box False)."""
    occupied = torch.zeros(4, 4, 4, dtype=torch.bool)
    occupancy = Occupancy(occupied, box_size=1.0, outside_empty=False)
    points = torch.tensor([[[-0.4, -0.4, -0.4], [0.7, 0.0, 0.0]]])
    assert occupancy(points).tolist() == [[False, True]]
