"""The CUDA path (benchmarks/gpu.sh runs these on a machine with a GPU; elsewhere they are
skipped): the field, the sparse sampler, an edit, a training step and the open model on CUDA
agree with the CPU."""

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def priors():
    from bridge.prior.model import HeadPrior

    return HeadPrior.load(None), HeadPrior.load(None, device="cuda")


def test_planes_and_field_on_cuda_match_the_cpu(priors):
    cpu, gpu = priors
    ws, _ = cpu.head_ws(3)
    points = torch.rand(1, 4096, 3) - 0.5
    with torch.no_grad():
        a = cpu.generator.field(ws[None])(points)
        b = gpu.generator.field(ws[None].cuda())(points.cuda())
    for name in ("sigma", "rgb"):
        assert (a[name] - b[name].cpu()).abs().max() < 1e-2, name


def test_an_edit_and_its_sparse_grid_on_cuda_match_the_cpu(priors):
    from bridge.field.grid import sample_grid
    from bridge.lenerf.apply import EditStep, apply_edits
    from bridge.lenerf.edit_module import BUNDLED_LIBRARY, EditLibrary

    cpu, gpu = priors
    ws, _ = cpu.head_ws(3)
    grids = []
    for prior, device in ((cpu, "cpu"), (gpu, "cuda")):
        module = EditLibrary(BUNDLED_LIBRARY, generator_sha256=prior.sha256).load("open_mouth", device=device)
        with torch.no_grad():
            field, _ = apply_edits(prior.generator, ws[None].to(device), [EditStep(module, 1.0)])
            grids.append(sample_grid(field, 64, prior.surface_level, device=device))
    inside = [(g.density > g.level) for g in grids]
    assert (inside[0] != inside[1]).mean() < 1e-3
    assert abs(grids[0].masks.astype(float) - grids[1].masks.astype(float)).max() < 0.05


def test_a_training_step_and_a_prompt_edit_run_on_cuda(priors):
    from bridge.guidance.clip import load_clip
    from bridge.guidance.losses import ClipLossConfig
    from bridge.lenerf.edit_module import EditSpec
    from bridge.lenerf.open_model import BUNDLED_OPEN_MODEL, OpenEditModel
    from bridge.lenerf.trainer import EditTrainer, EditTrainingConfig

    _, gpu = priors
    clip = load_clip("bundled", "cuda")
    trainer = EditTrainer(
        gpu.generator,
        gpu.sample_ws,
        clip,
        EditSpec("green eyes", "eyes"),
        EditTrainingConfig(steps=2, heads=1, resolution=32, samples=12),
        clip_loss=ClipLossConfig(augment_copies=1),
    )
    figures, _ = trainer.train_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in figures.values())
    edit = OpenEditModel.load(BUNDLED_OPEN_MODEL, gpu.sha256, "cuda").edit(clip, "teal hair", "hair")
    assert edit.spec.edit == "teal hair"


def test_a_preview_where_every_ray_stops_early_renders_on_cuda():
    """Every ray of a chunk opaque before its last coarse group: the samples left were marked
    with a mask made on the CPU, which a skipping field then met with its CUDA occupancy."""
    from bridge.field import cameras
    from bridge.field.occupancy import Occupancy
    from bridge.field.renderer import RenderConfig, VolumeRenderer

    def opaque(points):
        return {
            "sigma": torch.full((*points.shape[:2], 1), 50.0, device=points.device),
            "rgb": torch.ones(*points.shape[:2], 3, device=points.device),
        }

    pictures = []
    for device in ("cpu", "cuda"):
        skipping = Occupancy(torch.ones(4, 4, 4, dtype=torch.bool, device=device), outside_empty=False).skipping(opaque)
        pose, intrinsics = cameras.orbit_pose(0.0, 0.0, pivot=(0.0, 0.0, 0.0)).to(device), cameras.intrinsics_matrix().to(device)
        with torch.no_grad():
            pictures.append(VolumeRenderer(RenderConfig()).render(skipping, pose, intrinsics, 16)["rgb"].cpu())
    assert torch.allclose(pictures[0], pictures[1], atol=1e-4)
