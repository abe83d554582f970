"""Training an edit on a tiny generator with the tiny CLIP: learning, stopping, resuming, saving."""

import pytest
import torch

from bridge.field.generator import GeneratorConfig, TriPlaneGenerator
from bridge.field.renderer import RenderConfig
from bridge.lenerf.apply import EditStep, apply_edits
from bridge.lenerf.edit_module import EditLibrary, EditModule, EditModuleError, EditSpec
from bridge.lenerf.trainer import EditTrainer, EditTrainingConfig

TINY = GeneratorConfig(
    z_dim=4,
    c_dim=0,
    w_dim=16,
    plane_resolution=16,
    plane_channels=4,
    channel_base=64,
    channel_max=16,
    decoder_hidden=8,
    decoder_features=4,
    render=RenderConfig(background=(1.0, 1.0, 1.0)),
)
FAST = EditTrainingConfig(steps=4, heads=1, resolution=16, samples=6, checkpoint_every=2)


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return TriPlaneGenerator(TINY).eval()


def _trainer(generator, clip, config=FAST, geometry=False, edit="blue eyes"):
    def sample_ws(batch, rng):
        return generator.map(torch.randn(batch, TINY.z_dim, generator=rng), None)

    from bridge.guidance.losses import ClipLossConfig

    return EditTrainer(
        generator,
        sample_ws,
        clip,
        EditSpec(edit, "eyes", geometry=geometry),
        config,
        clip_loss=ClipLossConfig(augment_copies=1),
    )


def test_attention_field_learns_a_planted_pseudo_label(tiny_clip, monkeypatch):
    torch.manual_seed(1)
    solid = TriPlaneGenerator(TINY).eval()
    with torch.no_grad():  # every point opaque: a rendered mask can then take any value
        solid.decoder.fc1.bias[0] = 50.0 / solid.decoder.fc1.bias_gain
    trainer = _trainer(
        solid, tiny_clip, EditTrainingConfig(steps=40, heads=1, resolution=16, samples=6, alternate=False, learning_rate=1e-2)
    )
    planted = torch.zeros(1, 1, 16, 16)
    planted[..., :, 8:] = 1.0  # the right half of every view
    monkeypatch.setattr(trainer, "pseudo_labels", lambda source, target: planted)
    first = trainer.train_step()[0]["mask"]
    for _ in range(30):
        last = trainer.train_step()[0]["mask"]
    assert last < 0.5 * first, (first, last)


def test_a_step_reports_every_term_and_changes_the_modules(generator, tiny_clip):
    trainer = _trainer(generator, tiny_clip, geometry=True)
    before = {k: v.clone() for k, v in trainer.modules.state_dict().items()}
    figures, images = trainer.train_step()
    assert set(figures) == {"clip", "residual", "preservation", "mask", "tv", "sparsity", "binarisation", "deformation", "total"}
    assert all(torch.isfinite(torch.tensor(v)) for v in figures.values())
    assert images["edited"].shape == (3, 16, 16) and images["mask"].shape == (1, 16, 16)
    changed = [k for k, v in trainer.modules.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("mapper.") for k in changed)  # step 0 trains the mapper (alternating)


def test_cancel_stops_before_the_next_step_and_resume_continues(generator, tiny_clip, tmp_path):
    trainer = _trainer(generator, tiny_clip)
    steps_seen = []
    result = trainer.train(tmp_path, "gen-sha", on_progress=lambda p: steps_seen.append(p.step), should_stop=lambda: trainer.step >= 1)
    assert result is None and steps_seen == [1]
    again = _trainer(generator, tiny_clip)
    assert again.resume(tmp_path) and again.step == 1
    module = again.train(tmp_path, "gen-sha")
    assert module is not None and again.step == FAST.steps
    assert module.info["training"]["resumed_from_step"] == 1
    from bridge.guidance.relevance import PSEUDO_LABEL_LEVEL, PSEUDO_LABEL_OPTIONS

    assert module.info["training"]["pseudo_labels"] == {
        **PSEUDO_LABEL_OPTIONS,
        "level": PSEUDO_LABEL_LEVEL,
        "baseline": None,
    }  # how its labels were made


def test_a_run_stopped_by_its_time_limit_resumes_from_its_last_step(generator, tiny_clip, tmp_path, monkeypatch):
    """--minutes wrote the module but left the checkpoint at the last hundredth step, so the same
    command again trained those steps a second time."""
    import dataclasses

    from bridge.lenerf import trainer as trainer_module

    trainer = _trainer(generator, tiny_clip)
    trainer.config = dataclasses.replace(trainer.config, time_limit_minutes=1.0, checkpoint_every=100)
    ticks = iter([0.0, 0.0, 0.0])
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: next(ticks, 1e6))  # a step or two, then the limit
    module = trainer.train(tmp_path, "gen-sha")
    monkeypatch.undo()
    assert module is not None and 1 <= trainer.step < FAST.steps
    again = _trainer(generator, tiny_clip)
    assert again.resume(tmp_path) and again.step == trainer.step


def test_a_checkpoint_of_another_edit_or_a_damaged_one_is_refused_in_one_sentence(generator, tiny_clip, tmp_path):
    """Another edit's checkpoint was resumed as this one (a "green eyes" run went on from "blue
    eyes"' steps), and a damaged checkpoint was a JSONDecodeError or a torch traceback."""
    from bridge.errors import BridgeError

    trainer = _trainer(generator, tiny_clip)
    assert trainer.train(tmp_path, "gen-sha", should_stop=lambda: trainer.step >= 1) is None
    with pytest.raises(BridgeError, match="the training of another edit for 'blue eyes' on 'eyes'"):
        _trainer(generator, tiny_clip, edit="green eyes").resume(tmp_path)
    with pytest.raises(BridgeError, match="other training settings"):
        _trainer(generator, tiny_clip, config=EditTrainingConfig(steps=4, heads=1, resolution=16, samples=6, learning_rate=0.5)).resume(
            tmp_path
        )
    (tmp_path / "checkpoint_optimisers.pt").unlink()
    with pytest.raises(BridgeError, match="damaged or incomplete"):
        _trainer(generator, tiny_clip).resume(tmp_path)
    (tmp_path / "checkpoint.json").write_text("not json")
    with pytest.raises(BridgeError, match="damaged or incomplete"):
        _trainer(generator, tiny_clip).resume(tmp_path)
    assert not list(tmp_path.glob("*.partial")), "checkpoints are written whole"


def test_edit_module_round_trip_and_generator_check(generator, tiny_clip, tmp_path):
    module = _trainer(generator, tiny_clip).train(tmp_path / "blue_eyes", "gen-sha")
    loaded = EditModule.load(tmp_path / "blue_eyes", "gen-sha")
    assert loaded.spec == module.spec and loaded.clip["sha256"]
    for name, tensor in module.modules.state_dict().items():
        assert torch.equal(tensor, loaded.modules.state_dict()[name])
    with pytest.raises(EditModuleError, match="trained for another generator"):
        EditModule.load(tmp_path / "blue_eyes", "other-sha")
    (tmp_path / "blue_eyes" / "edit.safetensors").write_bytes(b"broken")
    with pytest.raises(EditModuleError, match="checksum"):
        EditModule.load(tmp_path / "blue_eyes")
    entries = EditLibrary(tmp_path, generator_sha256="other-sha").entries()
    assert [e.name for e in entries] == ["blue_eyes"] and entries[0].problem == "trained for another generator"


def test_applied_edits_stack_and_keep_a_mask_per_step(generator, tiny_clip, tmp_path):
    module = _trainer(generator, tiny_clip).train(tmp_path / "m", "gen-sha")
    ws = generator.map(torch.randn(2, TINY.z_dim), None)
    points = torch.rand(2, 30, 3) - 0.5
    with torch.no_grad():
        none, _ = apply_edits(generator, ws, [])
        zero, _ = apply_edits(generator, ws, [EditStep(module, strength=0.0)])
        stacked, _ = apply_edits(generator, ws, [EditStep(module), EditStep(module, 1.5, mask_module=module)])
        out = stacked(points)
    assert out["masks"].shape == (2, 30, 2)
    # strength 0: the target is the source, so the fused field is the source wherever m is
    assert torch.allclose(zero(points)["rgb"], none(points)["rgb"], atol=1e-5)
    from bridge.errors import BridgeError

    with pytest.raises(BridgeError, match="between 0 and 1.5"):
        apply_edits(generator, ws, [EditStep(module, strength=2.0)])


@pytest.mark.parametrize("warmup, reaches_mapper", [(1.0, True), (0.0, False)])
def test_mapper_warmup_lets_clip_reach_the_mapper_through_a_closed_mask(generator, tiny_clip, warmup, reaches_mapper):
    """With the attention field shut (m = 0) the fused render ignores the target, so only the
    warm-up's m = 1 render gives the CLIP term a gradient toward the mapper."""
    from dataclasses import replace

    trainer = _trainer(generator, tiny_clip, replace(FAST, mapper_warmup=warmup))
    with torch.no_grad():
        trainer.modules.attention.layers[-1].weight.zero_()
        trainer.modules.attention.layers[-1].bias.fill_(-40.0)
        trainer.modules.mapper.mappers[0].layers[-1].weight.normal_()  # a mapper that does something
    terms, _ = trainer.batch_losses()
    terms["clip"].backward()
    gradient = sum(p.grad.abs().sum() for p in trainer.modules.mapper.parameters() if p.grad is not None)
    assert (gradient > 1e-6) == reaches_mapper, float(gradient)


def test_deformation_drift_counts_only_matter_outside_the_mask():
    from bridge.lenerf.losses import deformation_outside_mask

    offsets = torch.tensor([[[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]])
    keep = torch.tensor([[[1.0], [1.0], [0.0]]])  # the moved third point is inside the mask (or empty)
    assert float(deformation_outside_mask(offsets, keep)) == pytest.approx(0.25 / 2)
    assert float(deformation_outside_mask(offsets, torch.zeros_like(keep))) == 0.0


def test_geometry_training_pulls_a_drifting_deformation_back(tiny_clip):
    torch.manual_seed(1)
    solid = TriPlaneGenerator(TINY).eval()
    with torch.no_grad():  # matter everywhere, so every random point counts
        solid.decoder.fc1.bias[0] = 50.0 / solid.decoder.fc1.bias_gain
    trainer = _trainer(solid, tiny_clip, geometry=True)

    def drift() -> float:
        return float(trainer.deformation_drift(_edited_field(trainer)).detach())

    assert drift() == 0.0  # an untrained deformation is the identity
    with torch.no_grad():
        trainer.modules.deformation.layers[-1].bias.fill_(1.0)
        trainer.modules.attention.layers[-1].bias.fill_(-20.0)  # the mask off everywhere
    optimiser = torch.optim.Adam(trainer.modules.deformation.parameters(), lr=1e-2)
    first = drift()
    for _ in range(20):
        optimiser.zero_grad()
        trainer.deformation_drift(_edited_field(trainer)).backward()
        optimiser.step()
    assert first > 0.3 and drift() < 0.5 * first


def _edited_field(trainer):
    from bridge.lenerf.fusion import EditedField, PlaneFeatures

    ws = trainer.sample_ws(1, torch.Generator().manual_seed(0))
    planes = PlaneFeatures(trainer.generator.planes(ws))
    return EditedField(trainer.generator.decoder, planes, planes, ws, ws, trainer.modules.attention, trainer.modules.deformation)


def test_geometry_labels_come_from_both_renders_or_the_target_alone(generator, tiny_clip):
    from dataclasses import replace

    torch.manual_seed(3)
    source = {"rgb": torch.rand(1, 3, 16, 16), "opacity": torch.ones(1, 1, 16, 16)}
    target = {"rgb": torch.rand(1, 3, 16, 16), "opacity": torch.ones(1, 1, 16, 16)}
    both = _trainer(generator, tiny_clip, geometry=True)
    alone = _trainer(generator, tiny_clip, replace(FAST, geometry_labels="target"), geometry=True)
    of_source, of_target = both.pseudo_labels(source, None), both.pseudo_labels(target, None)
    assert torch.equal(alone.pseudo_labels(source, target), of_target)
    assert torch.allclose(both.pseudo_labels(source, target), torch.maximum(of_source, of_target))
    assert not torch.equal(of_source, of_target)
    with pytest.raises(ValueError, match="geometry_labels"):
        _trainer(generator, tiny_clip, replace(FAST, geometry_labels="source"), geometry=True)


def test_a_label_baseline_takes_what_any_prompt_finds_off_the_labels(generator, tiny_clip, monkeypatch):
    from dataclasses import replace

    import bridge.lenerf.trainer as trainer_module

    sink, part = torch.zeros(1, 8, 8), torch.zeros(1, 8, 8)
    sink[:, 1, 1] = 1.0  # relevant whatever the prompt (the eyes of a small ViT)
    part[:, 5:, 5:] = 1.0  # the mask prompt's part

    def planted(clip, images, prompts, **options):
        return torch.maximum(sink, part) if prompts != ["a face"] else sink

    monkeypatch.setattr(trainer_module, "relevance_maps", planted)
    render = {"rgb": torch.rand(1, 3, 8, 8), "opacity": torch.ones(1, 1, 8, 8)}
    plain = _trainer(generator, tiny_clip).pseudo_labels(render, None)
    above = _trainer(generator, tiny_clip, replace(FAST, label_baseline="a face")).pseudo_labels(render, None)
    assert plain[0, 0, 1, 1] == 1.0 and above[0, 0, 1, 1] == 0.0
    assert torch.equal(above[0, 0] > 0.5, part[0] > 0.5)
