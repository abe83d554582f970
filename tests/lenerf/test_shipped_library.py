"""The edits shipped in bridge/lenerf/library/ belong to the bundled prior and apply to its heads."""

import torch

from bridge.lenerf.apply import EditStep, apply_edits
from bridge.lenerf.edit_module import EditLibrary
from bridge.prior.model import HeadCode, HeadPrior

SHIPPED = {"blue_eyes": ("blue eyes", "eyes", False), "red_hair": ("red hair", "hair", False), "open_mouth": ("open mouth", "mouth", True)}


def test_shipped_edits_are_listed_usable_and_apply_as_a_stack():
    prior = HeadPrior.load()
    library = EditLibrary(generator_sha256=prior.sha256)
    entries = {e.name: e for e in library.entries()}
    assert set(SHIPPED) <= set(entries)
    for name, (edit, mask, geometry) in SHIPPED.items():
        entry = entries[name]
        assert entry.problem is None, (name, entry.problem)
        assert (entry.edit, entry.mask, entry.geometry) == (edit, mask, geometry)
    code = HeadCode.from_seed(5)
    points = torch.rand(1, 4096, 3) - 0.5
    with torch.no_grad():
        ws = prior.ws(code.params[None], code.noise[None])
        field, _ = apply_edits(prior.generator, ws, [EditStep(library.load(n)) for n in SHIPPED])
        out = field(points)
    assert out["masks"].shape == (1, 4096, len(SHIPPED))
    assert out["masks"].min() >= 0 and out["masks"].max() <= 1
    assert torch.isfinite(out["sigma"]).all() and torch.isfinite(out["rgb"]).all()
