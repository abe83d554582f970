"""GPU figures (benchmarks/gpu.sh runs this on a machine with CUDA): the same work as the CPU
benchmarks, synchronised, medians after a warm-up. Each figure that cannot be measured there says
why instead of a number.

- apply_render_ms_128: one edit applied and one 128^2 view rendered with empty-space skipping;
  apply_render_ms_128_full: every sample evaluated.
- grid_s_256 / grid_s_256_dense: the edited field's 256^3 FieldGrid, sparse and dense sampling.
- edit_to_mesh_s_256: the sparse 256^3 grid and its textured mesh (mesh_export on the CPU).
- train_step_ms: one LENeRF training step of an edit (the prior, the bundled head CLIP).
- prompt_ms: the open model's edit for a prompt it has not seen before (text to PromptEdit).
"""

from __future__ import annotations

import statistics
import time

import torch


def _timed_ms(work, repeats: int = 5) -> float:
    work()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        work()
        torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - started))
    return round(statistics.median(times), 2)


def _figure(figures: dict, name: str, measure) -> None:
    try:
        figures[name] = measure()
    except Exception as error:  # noqa: BLE001 (a figure that cannot be measured says why)
        figures[name] = f"not measured: {type(error).__name__}: {str(error)[:160]}"


def run(quick: bool = False) -> dict:
    if not torch.cuda.is_available():
        return {"device": "cpu", "error": "PyTorch sees no CUDA GPU here; run benchmarks/gpu.sh on a machine with one"}
    from bridge.field.grid import sample_grid
    from bridge.field.occupancy import Occupancy, skipping_samples
    from bridge.lenerf.apply import EditStep, apply_edits
    from bridge.lenerf.edit_module import BUNDLED_LIBRARY, EditLibrary
    from bridge.prior.model import HeadPrior

    device = torch.device("cuda")
    prior = HeadPrior.load(None, device=device)
    module = EditLibrary(BUNDLED_LIBRARY, generator_sha256=prior.sha256).load("blue_eyes", device=device)
    ws, _ = prior.head_ws(3)
    ws = ws[None].to(device)
    figures: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    box = prior.render_config.box_size

    def apply_render(skipping: bool):
        with torch.no_grad():
            field, edited_ws = apply_edits(prior.generator, ws, [EditStep(module, 1.0)])
            config = None
            if skipping:
                field = Occupancy.probe(field, box, device=device).skipping(field)
                config = skipping_samples(prior.render_config)
            prior.view(field, edited_ws, 20.0, 128, ("rgb", "mask"), config)

    _figure(figures, "apply_render_ms_128", lambda: _timed_ms(lambda: apply_render(True)))
    _figure(figures, "apply_render_ms_128_full", lambda: _timed_ms(lambda: apply_render(False)))
    with torch.no_grad():
        field, _ = apply_edits(prior.generator, ws, [EditStep(module, 1.0)])

    def grid(sparse: bool):
        with torch.no_grad():
            return sample_grid(field, 256, prior.surface_level, box, device=device, sparse=sparse)

    _figure(figures, "grid_s_256", lambda: round(_timed_ms(lambda: grid(True), 1 if quick else 3) / 1000, 3))
    _figure(figures, "grid_s_256_dense", lambda: round(_timed_ms(lambda: grid(False), 1) / 1000, 3))

    def edit_to_mesh() -> float:
        import mesh_export

        started = time.perf_counter()
        mesh_export.grid_to_mesh(grid(True), mesh_export.ExportOptions(texture_size=1024))
        return round(time.perf_counter() - started, 3)

    _figure(figures, "edit_to_mesh_s_256", edit_to_mesh)

    def train_step_ms() -> float:
        from bridge.guidance.clip import load_clip
        from bridge.guidance.losses import ClipLossConfig
        from bridge.lenerf.edit_module import EditSpec
        from bridge.lenerf.recipes import recipe_for
        from bridge.lenerf.trainer import EditTrainer, EditTrainingConfig

        spec = EditSpec("green eyes", "eyes")
        recipe = recipe_for(spec)
        trainer = EditTrainer(
            prior.generator,
            prior.sample_ws,
            load_clip("bundled", device),
            spec,
            EditTrainingConfig(steps=10, **recipe.options),
            clip_loss=ClipLossConfig(kind=recipe.clip_loss),
        )
        return _timed_ms(trainer.train_step, 3)

    _figure(figures, "train_step_ms", train_step_ms)

    def prompt_ms() -> float:
        from bridge.guidance.clip import load_clip
        from bridge.lenerf.open_model import BUNDLED_OPEN_MODEL, OpenEditModel

        clip = load_clip("bundled", device)
        model = OpenEditModel.load(BUNDLED_OPEN_MODEL, prior.sha256, device)
        prompts = iter(f"{colour} hair" for colour in ("teal", "violet", "copper", "silver", "pink", "amber", "olive", "navy"))
        return _timed_ms(lambda: model.edit(clip, next(prompts), "hair"), 5)

    _figure(figures, "prompt_ms", prompt_ms)
    figures["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return figures
